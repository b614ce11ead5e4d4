"""Transaction-scoped advisory locks: one at a time per name, released at commit or rollback."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def advisory_xact_lock(session: AsyncSession, name: str) -> None:
    """Wait until no other transaction holds the lock `name`, then hold it until this one ends."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": name}
    )
