"""The audit record of something done to one export task (who did what, never patient data)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit
from ehiconnect.clock import Clock
from ehiconnect.exports.models import ExportTask

SYSTEM = "system"  # the actor of what the platform does by itself (a worker, the reconciler)


async def record_task_action(
    session: AsyncSession,
    clock: Clock,
    task: ExportTask,
    action: str,
    *,
    actor: str = SYSTEM,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record `action` on `task` in the caller's transaction (it commits with the change)."""
    await audit.record(
        session,
        clock,
        actor=actor,
        action=action,
        org_id=task.org_id,
        org_connection_id=task.org_connection_id,
        task_id=task.task_id,
        detail=detail,
    )
