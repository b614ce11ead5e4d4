"""Reading back what happened: events (listed for reconciliation, or one to resend), attempt
logs, and retention. An organization's events are read in its `OrgScope`."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from typing import Any

import orjson
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.errors import InvalidRequest, NotFound
from ehiconnect.ids import as_api_mode
from ehiconnect.scope import OrgScope
from ehiconnect.webhooks import events
from ehiconnect.webhooks.models import WebhookAttempt, WebhookEvent

MAX_PAGE_SIZE = 500
WHERE_EVENT_IDS_COME_FROM = "GET /v1/webhooks/events lists yours"


@dataclasses.dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    next_cursor: str | None

    def as_json(self) -> dict[str, Any]:
        return {"events": self.events, "next_cursor": self.next_cursor}


def encode_cursor(created_at: dt.datetime, event_id: str) -> str:
    raw = orjson.dumps([created_at.isoformat(), event_id])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, event_id = orjson.loads(raw)
        return dt.datetime.fromisoformat(moment), str(event_id)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidRequest(
            "cursor is not one this API returned; pass next_cursor from the previous page"
        ) from None


async def get_event(session: AsyncSession, scope: OrgScope, event_id: str) -> WebhookEvent:
    """The event, if `scope` admits it (`OrgScope.admit`: 404 or 403 otherwise)."""
    event = await session.get(WebhookEvent, event_id)
    return scope.admitted(
        event, kind="webhook event", object_id=event_id, hint=WHERE_EVENT_IDS_COME_FROM
    )


async def event_scope(session: AsyncSession, event_id: str) -> OrgScope:
    """The organization and mode an event belongs to: the operator's (CLI) scope to resend it."""
    event = await session.get(WebhookEvent, event_id)
    if event is None:
        raise NotFound(
            f"no webhook event has id {event_id}; `ehiconnect webhooks attempts` shows recent ones"
        )
    return OrgScope(org_id=event.org_id, api_mode=as_api_mode(event.api_mode))


async def list_events(
    session: AsyncSession,
    scope: OrgScope,
    *,
    types: list[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> EventPage:
    """The scope's events oldest first, as envelopes dated when they were emitted; page with
    `next_cursor`."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    query = (
        select(WebhookEvent)
        .where(WebhookEvent.org_id == scope.org_id, WebhookEvent.api_mode == scope.api_mode)
        .order_by(WebhookEvent.created_at, WebhookEvent.event_id)
        .limit(limit + 1)
    )
    if types:
        query = query.where(WebhookEvent.type.in_(types))
    if since is not None:
        query = query.where(WebhookEvent.created_at >= since)
    if until is not None:
        query = query.where(WebhookEvent.created_at < until)
    if cursor is not None:
        after_time, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                WebhookEvent.created_at > after_time,
                and_(WebhookEvent.created_at == after_time, WebhookEvent.event_id > after_id),
            )
        )
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    envelopes = [
        events.build_envelope(
            event_id=row.event_id,
            type=row.type,
            api_mode="live" if row.api_mode == "live" else "test",
            data=row.data,
            date=row.created_at,
        )
        for row in rows
    ]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].event_id) if more else None
    return EventPage(events=envelopes, next_cursor=next_cursor)


async def list_attempts(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest attempts first: time, status code, latency, response excerpt, error."""
    query = select(WebhookAttempt).order_by(WebhookAttempt.attempted_at.desc()).limit(limit)
    if endpoint_id is not None:
        query = query.where(WebhookAttempt.endpoint_id == endpoint_id)
    if event_id is not None:
        query = query.where(WebhookAttempt.event_id == event_id)
    return [
        {
            "event_id": a.event_id,
            "endpoint_id": a.endpoint_id,
            "attempt": a.attempt_number,
            "attempted_at": a.attempted_at.isoformat(),
            "status_code": a.status_code,
            "latency_ms": a.latency_ms,
            "outcome": a.outcome,
            "response_excerpt": a.response_excerpt,
            "error": a.error,
        }
        for a in (await session.scalars(query)).all()
    ]


async def purge_expired(
    session: AsyncSession,
    now: dt.datetime,
    *,
    log_retention: dt.timedelta,
    event_retention: dt.timedelta,
) -> tuple[int, int]:
    """Delete attempt logs and events past retention; (attempts, events) deleted."""
    attempts = await session.execute(
        delete(WebhookAttempt).where(WebhookAttempt.attempted_at < now - log_retention)
    )
    old_events = await session.execute(
        delete(WebhookEvent).where(WebhookEvent.created_at < now - event_retention)
    )
    return int(attempts.rowcount or 0), int(old_events.rowcount or 0)  # type: ignore[attr-defined]
