"""The public rate limit every API process of a fleet enforces together, kept in PostgreSQL.

Each request spends from its client's bucket in `rate_limits` with one statement in its own short
transaction (committed at once, so the bucket's row lock is never held through the request, and a
request that later fails has still spent its token).

While the database cannot be reached, each process falls back to its own in-memory buckets
(`TokenBucketLimiter`): a flood is still bounded, by the per-process budget, and a database outage
is not reported to clients as their own excess (a 429 would tell a well-behaved widget to back
off for a wrong reason; the request then meets the outage itself and is answered 503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ehiconnect.api.ratelimit import TokenBucketLimiter, refusal
from ehiconnect.db.database import Database
from ehiconnect.db.rate_limits import spend_token, sweep_full_buckets
from ehiconnect.db.unavailable import is_database_away

log = logging.getLogger("ehiconnect.api.ratelimit")

SWEEP_EVERY_SECONDS = 60.0


class SharedRateLimiter:
    """Token buckets per client key in PostgreSQL; in-memory buckets while it is away."""

    def __init__(
        self,
        *,
        per_minute: int,
        burst: int,
        sweep_every_seconds: float = SWEEP_EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.fallback = TokenBucketLimiter(per_minute=per_minute, burst=burst, now=monotonic)
        self._sweep_every = sweep_every_seconds
        self._monotonic = monotonic
        self._next_sweep = monotonic() + sweep_every_seconds
        self._warned_at: float | None = None

    async def check(self, database: Database, client: str) -> None:
        """Spend one token for `client`, or raise RateLimited saying when to come back."""
        try:
            async with database.transaction() as session:
                spent = await spend_token(session, client, rate=self.rate, burst=self.burst)
            await self._sweep_when_due(database)
        except Exception as error:
            if not is_database_away(error):
                raise
            self._warn_fallback(error)
            self.fallback.check(client)
            return
        if not spent.allowed:
            raise refusal(spent.tokens, rate=self.rate)

    async def _sweep_when_due(self, database: Database) -> None:
        now = self._monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_every
        async with database.transaction() as session:
            swept = await sweep_full_buckets(session, rate=self.rate, burst=self.burst)
        if swept:
            log.debug("rate-limit buckets swept", extra={"count": swept})

    def _warn_fallback(self, error: BaseException) -> None:
        now = self._monotonic()
        if self._warned_at is not None and now - self._warned_at < 60.0:
            return
        self._warned_at = now
        log.warning(
            "rate limit falls back to this process's own buckets: the database is away",
            extra={"error": type(error).__name__},
        )
