"""The audit log: who did what to which organization's data, and when.

Call `record` inside the transaction of the action it describes. `detail` carries identifiers and
counts, never tokens or patient data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.clock import Clock
from ehiconnect.db.models import AuditLog


async def record(
    session: AsyncSession,
    clock: Clock,
    *,
    actor: str,
    action: str,
    org_id: str | None = None,
    org_connection_id: str | None = None,
    task_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            occurred_at=clock.now(),
            actor=actor,
            action=action,
            org_id=org_id,
            org_connection_id=org_connection_id,
            task_id=task_id,
            detail=detail or {},
        )
    )
