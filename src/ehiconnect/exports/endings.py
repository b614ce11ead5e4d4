"""How an export task ends: published, failed with a reason, and its staging area discarded.

Each end is one locked transaction on the task's row that changes its state, emits the webhook
event and records the audit entry together (the worker, the reconciler and a customer's
cancellation may all try to end a task at once: the first wins, the others see it ended). What
follows the commit — telemetry, discarding the staging area — is idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.database import Database
from ehiconnect.db.models import OrgConnection
from ehiconnect.exports import staging, telemetry
from ehiconnect.exports.audit_trail import record_task_action
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.package import PackagedFile, discard_partial
from ehiconnect.exports.ports import ExportPorts
from ehiconnect.exports.staged_db import DatabaseStagedExport
from ehiconnect.ids import as_api_mode
from ehiconnect.storage.port import BlobStore, StorageError
from ehiconnect.vocabulary import EventType, ExportFailureReason, ExportPhase, ExportStatus
from ehiconnect.webhooks.outbox import emit
from ehiconnect.webhooks.payloads import payload_of

MISSING = "missing"  # what a run reports for a task that no longer exists

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorReport:
    """The export's error report as stored: its key, or None when nothing failed."""

    key: str | None
    count: int


def download_url(public_base_url: str, task_id: str, file_id: str) -> str:
    base = public_base_url.rstrip("/")
    return f"{base}/v1/bridge/fhir/ehi-export/{task_id}/download/{file_id}"


async def platform_type_of(session: AsyncSession, task: ExportTask) -> str:
    """The health system's platform type (a metric label) of the task's connection."""
    connection = await session.get(OrgConnection, task.org_connection_id)
    return connection.platform_type if connection else "unknown"


async def complete_task(
    ports: ExportPorts, task_id: str, packaged: PackagedFile, errors: ErrorReport
) -> str:
    """End a pending task as a success with its file, emitting the event; the task's state.

    A task cancelled meanwhile keeps its state, and the new file is deleted: no copy of the
    record stays behind.
    """
    async with ports.database.transaction() as session:
        task = await session.get(ExportTask, task_id, with_for_update=True)
        if task is None or task.status != ExportStatus.PENDING:
            await ports.blobs.delete(packaged.key)
            if errors.key:
                await ports.blobs.delete(errors.key)
            return task.status if task else MISSING
        done = ports.clock.now()
        expires = done + dt.timedelta(hours=ports.settings.retention_hours)
        _record_success(task, packaged, errors, done=done, expires=expires)
        links_expire = min(done + dt.timedelta(hours=ports.settings.link_lifetime_hours), expires)
        platform_type = await _announce_end(
            session,
            ports,
            task,
            EventType.EHI_EXPORT_SUCCESS,
            _success_data(task, packaged, ports.public_base_url, links_expire),
            action="export.completed",
            detail={"resources": packaged.total_resources, "errors": errors.count},
        )
    await _after_end(ports, task, platform_type)
    return ExportStatus.SUCCESS


def _record_success(
    task: ExportTask,
    packaged: PackagedFile,
    errors: ErrorReport,
    *,
    done: dt.datetime,
    expires: dt.datetime,
) -> None:
    task.status = ExportStatus.SUCCESS
    task.phase = ExportPhase.DONE
    task.completed_at = done
    task.expires_at = expires
    task.file_id = packaged.file_id
    task.file_key = packaged.key
    task.file_size = packaged.size
    task.sha256 = packaged.sha256
    task.error_key = errors.key
    task.error_count = errors.count
    task.stats = {
        "total_resources": packaged.total_resources,
        "total_by_resource_type": packaged.by_resource_type,
    }


def _success_data(
    task: ExportTask, packaged: PackagedFile, public_base_url: str, links_expire: dt.datetime
) -> dict[str, Any]:
    """The `patient.ehi_export_success` payload of a task just recorded as a success."""
    return {
        "org_connection_id": task.org_connection_id,
        "task_id": task.task_id,
        "org_id": task.org_id,
        "download_links": [
            {
                "url": download_url(public_base_url, task.task_id, packaged.file_id),
                "export_type": "jsonl",
                "content_type": "application/fhir+ndjson",
                "expires_at": links_expire.isoformat(),
                "size": packaged.size,
                "sha256": packaged.sha256,
            }
        ],
        "stats": task.stats,
    }


async def fail_task(ports: ExportPorts, task_id: str, reason: str, description: str) -> bool:
    """End a pending task as failed with `reason`, emitting the event; False if it had ended.

    A reason outside the published list is reported as `suppressed_please_contact`.
    """
    async with ports.database.transaction() as session:
        task = await session.get(ExportTask, task_id, with_for_update=True)
        if task is None or task.status != ExportStatus.PENDING:
            return False
        task.status = ExportStatus.FAILED
        # Where it stopped, for failure review ("timeout while hydrating"), before phase ends.
        task.progress = {**task.progress, "failed_in_phase": task.phase}
        task.phase = ExportPhase.DONE
        task.completed_at = ports.clock.now()
        task.failure_reason = ExportFailureReason.public(reason)
        task.failure_description = description
        platform_type = await _announce_end(
            session,
            ports,
            task,
            EventType.EHI_EXPORT_FAILED,
            {
                "org_connection_id": task.org_connection_id,
                "task_id": task_id,
                "org_id": task.org_id,
                "failure_reason": task.failure_reason,
                "failure_description": description,
            },
            action="export.failed",
            detail={"failure_reason": task.failure_reason},
        )
    await _after_end(ports, task, platform_type)
    return True


async def end_as_failed(ports: ExportPorts, task_id: str, reason: str, description: str) -> str:
    """`fail_task`, then the task's state: failed, or whatever ended it first."""
    if await fail_task(ports, task_id, reason, description):
        return ExportStatus.FAILED
    async with ports.database.transaction() as session:
        task = await session.get(ExportTask, task_id)
        return task.status if task else MISSING


async def _announce_end(
    session: AsyncSession,
    ports: ExportPorts,
    task: ExportTask,
    event: EventType,
    data: dict[str, Any],
    *,
    action: str,
    detail: dict[str, Any],
) -> str:
    """The event and the audit entry of a task's end, in its transaction; its platform type."""
    await emit(
        session,
        clock=ports.clock,
        org_id=task.org_id,
        api_mode=as_api_mode(task.api_mode),
        event=payload_of(event, data),
    )
    await record_task_action(session, ports.clock, task, action, detail=detail)
    return await platform_type_of(session, task)


async def _after_end(ports: ExportPorts, task: ExportTask, platform_type: str) -> None:
    telemetry.export_ended(task, platform_type)
    await discard_ended_staging(ports.database, ports.blobs, task.task_id)


async def count_failure(database: Database, task_id: str) -> int:
    """Record that a run ended in an unexpected error; how many have so far."""
    async with database.transaction() as session:
        failures = await session.scalar(
            text(
                "UPDATE export_tasks SET failures = failures + 1 WHERE task_id = :task_id "
                "RETURNING failures"
            ),
            {"task_id": task_id},
        )
    return int(failures or 0)


async def discard_ended_staging(database: Database, blobs: BlobStore, task_id: str) -> bool:
    """`_discard_staging` for a task that has ended: a storage failure is logged, not raised (the
    task's end stands; its rows stay, and the reconciliation pass tries again). Whether it went."""
    try:
        await _discard_staging(database, blobs, task_id)
    except (StorageError, OSError) as exc:
        log.warning(
            "an ended export's staging could not be deleted; the reconciliation pass tries again",
            extra={"task_id": task_id, "error": str(exc)},
        )
        return False
    return True


async def _discard_staging(database: Database, blobs: BlobStore, task_id: str) -> None:
    """Delete a task's staging rows, staged attachment blobs and partial file (idempotent)."""
    await discard_partial(DatabaseStagedExport(database, task_id), blobs, task_id)
    # The folder, not the recorded keys: a writer killed mid-blob left a temporary file (PHI)
    # or an unfinished upload there that no row names. Before the rows: if it fails, the rows
    # left make the reconciliation pass try again.
    await blobs.delete_folder(staging.staging_folder(task_id))
    async with database.transaction() as session:
        await staging.clear_staging(session, task_id)
