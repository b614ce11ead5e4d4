"""Claiming due deliveries: the only place that decides which worker sends what.

A claim takes due deliveries of enabled endpoints with FOR UPDATE SKIP LOCKED (so concurrent
workers never take the same row), moves their `next_attempt_at` to the end of a lease and stamps
them with a claim token, returning each one's event and URL, in one statement; the endpoints'
signing secrets are a second, in the same short transaction. If the worker dies, the lease runs
out and the deliveries are due again; a late result is recorded only under the token it was
claimed with.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.vault import TokenCipher
from ehiconnect.webhooks.endpoints import active_secrets
from ehiconnect.webhooks.schedule import AttemptOutcome, classify_attempt

_CLAIM_DUE = text(
    """
    WITH due AS (
        SELECT d.id FROM webhook_deliveries d
        JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= :now AND e.status = 'enabled'
          AND (CAST(:event_id AS text) IS NULL OR d.event_id = :event_id)
        ORDER BY d.next_attempt_at
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d SET next_attempt_at = :lease_until, claim_token = :token
    FROM due, webhook_events ev, webhook_endpoints e
    WHERE d.id = due.id AND ev.event_id = d.event_id AND e.endpoint_id = d.endpoint_id
    RETURNING d.id, d.event_id, d.endpoint_id, d.attempts,
        ev.type, ev.api_mode, ev.data, ev.created_at, e.url
    """
)

# Same index and join as the claim: claimed deliveries count too (their lease end is when a dead
# worker's claims come due again), deliveries of disabled endpoints do not.
_NEXT_DUE = text(
    """
    SELECT d.next_attempt_at FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
    WHERE d.status = 'pending' AND e.status = 'enabled'
    ORDER BY d.next_attempt_at
    LIMIT 1
    """
)


@dataclasses.dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: int
    claim_token: str
    attempt_number: int
    event_id: str
    event_type: str
    api_mode: str
    data: dict[str, Any]
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    event_created_at: dt.datetime | None = None  # the outbox commit (delivery latency metric)


async def claim_due(
    session: AsyncSession,
    cipher: TokenCipher,
    *,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
    event_id: str | None = None,
) -> list[ClaimedDelivery]:
    """Claim up to `limit` deliveries due at `now` (of one event, if given), oldest first."""
    token = str(uuid.uuid4())
    params = {
        "now": now,
        "lease_until": now + lease,
        "token": token,
        "limit": limit,
        "event_id": event_id,
    }
    rows = (await session.execute(_CLAIM_DUE, params)).all()
    if not rows:
        return []
    return await _load_claims(session, cipher, rows, token, now)


async def next_due_at(session: AsyncSession) -> dt.datetime | None:
    """When the next pending delivery of an enabled endpoint falls due (claimed or not), or None."""
    due: dt.datetime | None = await session.scalar(_NEXT_DUE)
    return due


async def _load_claims(
    session: AsyncSession, cipher: TokenCipher, rows: Sequence[Any], token: str, now: dt.datetime
) -> list[ClaimedDelivery]:
    # The claim returned each delivery's event and URL; only the secrets need another query.
    secrets = await active_secrets(session, cipher, {row.endpoint_id for row in rows}, now)
    return [
        ClaimedDelivery(
            delivery_id=row.id,
            claim_token=token,
            attempt_number=row.attempts + 1,
            event_id=row.event_id,
            event_type=row.type,
            api_mode=row.api_mode,
            data=row.data,
            endpoint_id=row.endpoint_id,
            url=row.url,
            secrets=tuple(secrets.get(row.endpoint_id, ())),
            event_created_at=row.created_at,
        )
        for row in rows
    ]


@dataclasses.dataclass(frozen=True)
class AttemptResult:
    delivery: ClaimedDelivery
    attempted_at: dt.datetime
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None

    @property
    def outcome(self) -> AttemptOutcome:
        return AttemptOutcome.FAILED if self.error else classify_attempt(self.status_code)
