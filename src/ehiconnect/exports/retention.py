"""Deleting export files when their retention ends (24 h after completion by default)."""

from __future__ import annotations

from sqlalchemy import select

from ehiconnect.exports import telemetry
from ehiconnect.exports.audit_trail import record_task_action
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.package import export_folder
from ehiconnect.exports.ports import ExportPorts
from ehiconnect.vocabulary import ExportStatus


async def purge_expired_exports(ports: ExportPorts, *, limit: int = 200) -> int:
    """Delete the files of successful exports past `expires_at`; mark them expired. How many."""
    now = ports.clock.now()
    async with ports.database.transaction() as session:
        tasks = list(
            await session.scalars(
                select(ExportTask)
                .where(ExportTask.status == ExportStatus.SUCCESS, ExportTask.expires_at <= now)
                .order_by(ExportTask.expires_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for task in tasks:
            for key in (task.file_key, task.error_key):
                if key:
                    await ports.blobs.delete(key)
            await ports.blobs.delete_folder(export_folder(task.task_id))  # and its folder
            task.status = ExportStatus.EXPIRED
            await record_task_action(session, ports.clock, task, "export.expired")
    for task in tasks:
        telemetry.export_purged(task)
    return len(tasks)
