"""Deleting export files when their retention ends (24 h after completion by default)."""

from __future__ import annotations

from sqlalchemy import select

from ehiconnect import audit
from ehiconnect.exports import telemetry
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.states import EXPIRED, SUCCESS
from ehiconnect.runtime import Runtime


async def purge_expired_exports(runtime: Runtime, *, limit: int = 200) -> int:
    """Delete the files of successful exports past `expires_at`; mark them expired. How many."""
    blobs = runtime.blobs
    now = runtime.clock.now()
    async with runtime.database.transaction() as session:
        tasks = list(
            await session.scalars(
                select(ExportTask)
                .where(ExportTask.status == SUCCESS, ExportTask.expires_at <= now)
                .order_by(ExportTask.expires_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for task in tasks:
            for key in (task.file_key, task.error_key):
                if key:
                    await blobs.delete(key)
            task.status = EXPIRED
            await audit.record(
                session,
                runtime.clock,
                actor="system",
                action="export.expired",
                org_id=task.org_id,
                org_connection_id=task.org_connection_id,
                task_id=task.task_id,
            )
    for task in tasks:
        telemetry.export_purged(task)
    return len(tasks)
