"""What the processes of a fleet record for each other in PostgreSQL.

`fleet_settings` holds, per setting that must be equal on every process, the fingerprint the
first process recorded (never a secret: vault keys appear as check values). Starters read and
write it under one advisory lock, so processes starting together agree on one record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Text, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.locks import advisory_xact_lock
from ehiconnect.db.models import Base
from ehiconnect.db.pools import FLEET_ROLES, WEBHOOK_LISTENER_NAME

FLEET_LOCK = "fleet-settings"


class FleetSetting(Base):
    __tablename__ = "fleet_settings"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[dict[str, Any]]
    recorded_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


async def lock_fleet_settings(session: AsyncSession) -> None:
    """Hold the fleet settings lock until the session's transaction ends."""
    await advisory_xact_lock(session, FLEET_LOCK)


async def recorded_fingerprints(session: AsyncSession) -> dict[str, dict[str, Any]]:
    rows = await session.scalars(select(FleetSetting))
    return {row.name: row.fingerprint for row in rows}


async def record_fingerprint(session: AsyncSession, name: str, fingerprint: dict[str, Any]) -> None:
    statement = insert(FleetSetting).values(name=name, fingerprint=fingerprint)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[FleetSetting.name],
            set_={"fingerprint": statement.excluded.fingerprint, "recorded_at": func.now()},
        )
    )


async def other_fleet_processes(session: AsyncSession) -> int:
    """Connections of other API and worker processes to this database, open right now.

    Every such process keeps at least one open (its job queue pool's first connection, a
    worker's LISTEN connections), so zero means no other API or worker is running.
    """
    names = [role.application_name for role in FLEET_ROLES] + [WEBHOOK_LISTENER_NAME]
    count = await session.scalar(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND application_name = ANY(:names)"
        ),
        {"names": names},
    )
    return int(count or 0)
