"""Rate-limit buckets every API process shares: one row per client key in an UNLOGGED table.

A request spends a token with one atomic statement (`spend_token`): an INSERT … ON CONFLICT DO
UPDATE that refills the stored bucket for the time since its last use, spends a token when one is
there, and returns what it decided. Row locks make concurrent requests of one client (on any
process) queue on that row, so a budget is never spent twice.

Time comes from the database's clock (`clock_timestamp()`), not from each host's: the API processes
of a fleet run on hosts whose clocks differ, and a bucket refilled by one and spent by another
would gain or lose the difference. Tests may pass `now` to step time.

The table is UNLOGGED: it is not written to the WAL (cheaper on this hot path) and is emptied
after a crash of PostgreSQL, which only hands every client a full bucket. A row whose bucket has
refilled completely says nothing an absent row does not; `sweep_full_buckets` deletes those.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Boolean, Double, Text, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base


class RateLimitBucket(Base):
    __tablename__ = "rate_limits"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    client_key: Mapped[str] = mapped_column(Text, primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[dt.datetime]
    allowed: Mapped[bool] = mapped_column(Boolean)


@dataclass(frozen=True)
class Spent:
    """What one request's spend decided: `allowed`, and the tokens the bucket holds now."""

    allowed: bool
    tokens: float


# `refilled` is `api.ratelimit.refill` in SQL: tokens accrue at :rate per second since the last
# use (never for a clock stepping back), capped at :burst. A refused request stores the refilled
# count at the new time, as the in-memory bucket does.
_SPEND = text(
    """
    INSERT INTO rate_limits AS bucket (client_key, tokens, updated_at, allowed)
    VALUES (:key, :burst - 1, COALESCE(CAST(:now AS timestamptz), clock_timestamp()), true)
    ON CONFLICT (client_key) DO UPDATE
    SET (tokens, updated_at, allowed) = (
        SELECT CASE WHEN refilled >= 1 THEN refilled - 1 ELSE refilled END,
               EXCLUDED.updated_at,
               refilled >= 1
        FROM (
            SELECT LEAST(
                CAST(:burst AS double precision),
                bucket.tokens + GREATEST(
                    0, EXTRACT(EPOCH FROM EXCLUDED.updated_at - bucket.updated_at)
                ) * :rate
            ) AS refilled
        ) AS computed
    )
    RETURNING allowed, tokens
    """
)

_SWEEP = text(
    """
    DELETE FROM rate_limits
    WHERE updated_at < COALESCE(CAST(:now AS timestamptz), clock_timestamp())
                       - make_interval(secs => :full_after)
    """
)


async def spend_token(
    session: AsyncSession, key: str, *, rate: float, burst: float, now: dt.datetime | None = None
) -> Spent:
    """Spend one token of `key`'s bucket (`rate` tokens per second, at most `burst`) if it has
    one. Commit right after: the row stays locked until the transaction ends."""
    row = (
        await session.execute(_SPEND, {"key": key, "rate": rate, "burst": burst, "now": now})
    ).one()
    return Spent(allowed=bool(row.allowed), tokens=float(row.tokens))


async def sweep_full_buckets(
    session: AsyncSession, *, rate: float, burst: float, now: dt.datetime | None = None
) -> int:
    """Delete the buckets that have refilled completely (unused for `burst / rate` seconds)."""
    full_after = burst / rate if rate > 0 else 24 * 3600.0
    result = await session.execute(_SWEEP, {"now": now, "full_after": full_after})
    return int(getattr(result, "rowcount", 0) or 0)
