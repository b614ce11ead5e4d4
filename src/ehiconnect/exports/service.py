"""Starting exports and reading their state, always within an `OrgScope` (one organization, one
mode)."""

from __future__ import annotations

import datetime as dt
import re

import procrastinate
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.connections.service import get_connection
from ehiconnect.connections.tokens import lock_connection
from ehiconnect.errors import Conflict
from ehiconnect.exports import telemetry
from ehiconnect.exports.audit_trail import record_task_action
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.ports import ExportPorts
from ehiconnect.exports.states import reusable
from ehiconnect.ids import new_task_id
from ehiconnect.orgs.credentials import Principal
from ehiconnect.queue.enqueue import enqueue
from ehiconnect.scope import OrgScope
from ehiconnect.vocabulary import ConnectionStatus, ExportPhase, ExportStatus

RUN_TASK = "exports:run_export"
_TASK_ID = re.compile(r"[0-9a-f]{32}")  # ids.new_task_id
WHERE_IDS_COME_FROM = "use the task_id the export request returned"


async def request_export(
    ports: ExportPorts, principal: Principal, connection_id: str
) -> ExportTask:
    """A pending task for the connection, or the one already pending or still retained."""
    now = ports.clock.now()
    async with ports.database.transaction() as session:
        connection = await get_connection(session, principal.scope, connection_id)
        await lock_connection(session, connection_id)  # two requests at once make one task
        if connection.status == ConnectionStatus.REVOKED:
            raise Conflict(
                "the connection is revoked; the patient must reconnect before an export",
                code="connection_revoked",
            )
        existing = await session.scalars(
            select(ExportTask)
            .where(ExportTask.org_connection_id == connection_id)
            .order_by(ExportTask.created_at.desc())
            .limit(5)
        )
        for task in existing:
            if reusable(task, now):
                return task
        task = ExportTask(
            task_id=new_task_id(),
            org_id=principal.org_id,
            org_connection_id=connection_id,
            api_mode=principal.api_mode,
            status=ExportStatus.PENDING,
            phase=ExportPhase.QUEUED,
            progress={},
            created_at=now,
            deadline_at=now + dt.timedelta(minutes=ports.settings.deadline_minutes),
            stats={},
        )
        session.add(task)
        await session.flush()
        task.job_id = await enqueue_run(session, ports.jobs, task.task_id)
        await record_task_action(
            session, ports.clock, task, "export.requested", actor=principal.actor
        )
    telemetry.export_requested(task, connection.platform_type)
    return task


async def enqueue_run(session: AsyncSession, jobs: procrastinate.App, task_id: str) -> int:
    """Queue the job that runs the task, in the caller's transaction; its id. At most one waits
    per task (`AlreadyEnqueued` otherwise)."""
    return await enqueue(session, jobs, RUN_TASK, queueing_lock=task_id, task_id=task_id)


async def get_task(
    session: AsyncSession, scope: OrgScope, task_id: str, *, for_update: bool = False
) -> ExportTask:
    """A task in `scope`; `for_update` locks its row until the transaction ends (a state change
    must not race the worker finishing it or retention purging it).

    The one tenant rule (`OrgScope.admit`): another organization's task, or none, is
    `NotFound`; a task of the caller's organization made in the other mode is 403
    `api_mode_mismatch`, naming the key to use.
    """
    task = (
        await session.get(ExportTask, task_id, with_for_update=for_update)
        if _TASK_ID.fullmatch(task_id)  # anything else (a NUL byte, say) is no task of ours
        else None
    )
    return scope.admitted(task, kind="export task", object_id=task_id, hint=WHERE_IDS_COME_FROM)
