"""Starting exports and reading their state, always within the caller's organization and mode."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit
from ehiconnect.connections.service import get_connection
from ehiconnect.connections.tokens import lock_connection
from ehiconnect.errors import Conflict, NotFound
from ehiconnect.exports import telemetry
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.states import PENDING, reusable
from ehiconnect.ids import new_task_id
from ehiconnect.orgs.credentials import Principal
from ehiconnect.queue.enqueue import enqueue
from ehiconnect.runtime import Runtime

RUN_TASK = "exports:run_export"
_TASK_ID = re.compile(r"[0-9a-f]{32}")  # ids.new_task_id


async def request_export(runtime: Runtime, principal: Principal, connection_id: str) -> ExportTask:
    """A pending task for the connection, or the one already pending or still retained."""
    now = runtime.clock.now()
    async with runtime.database.transaction() as session:
        connection = await get_connection(session, principal.scope, connection_id)
        await lock_connection(session, connection_id)  # two requests at once make one task
        if connection.status == "revoked":
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
            status=PENDING,
            phase="queued",
            progress={},
            created_at=now,
            deadline_at=now + dt.timedelta(minutes=runtime.settings.exports.deadline_minutes),
            stats={},
        )
        session.add(task)
        await session.flush()
        task.job_id = await enqueue(
            session, runtime.jobs, RUN_TASK, queueing_lock=task.task_id, task_id=task.task_id
        )
        await audit.record(
            session,
            runtime.clock,
            actor=principal.actor,
            action="export.requested",
            org_id=principal.org_id,
            org_connection_id=connection_id,
            task_id=task.task_id,
        )
    telemetry.export_requested(task, connection.platform_type)
    return task


async def get_task(
    session: AsyncSession, principal: Principal, task_id: str, *, for_update: bool = False
) -> ExportTask:
    """The caller's task; `for_update` locks its row until the transaction ends (a state change
    must not race the worker finishing it or retention purging it)."""
    task = (
        await session.get(ExportTask, task_id, with_for_update=for_update)
        if _TASK_ID.fullmatch(task_id)  # anything else (a NUL byte, say) is no task of ours
        else None
    )
    if task is None or task.org_id != principal.org_id:
        raise NotFound(
            f"you have no export task {task_id}; use the task_id the export request returned"
        )
    if task.api_mode != principal.api_mode:
        raise NotFound(f"you have no {principal.api_mode}-mode export task {task_id}")
    return task
