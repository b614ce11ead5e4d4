"""The transactional outbox: events are written in the caller's transaction, with one delivery
per matching endpoint and a NOTIFY that wakes the workers' dispatchers when it commits (and a
delivery job, when the caller passes the job app). If the caller's transaction rolls back, no
event, delivery, notification or job remains; if it commits, all of them do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import procrastinate
from sqlalchemy import func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.clock import Clock
from ehiconnect.errors import Conflict, NotFound
from ehiconnect.ids import ApiMode
from ehiconnect.queue.enqueue import enqueue
from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks import events
from ehiconnect.webhooks.endpoints import get_endpoint
from ehiconnect.webhooks.models import (
    DELIVERY_PENDING,
    ENDPOINT_ENABLED,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from ehiconnect.webhooks.wakeup import notify_deliverers

DELIVER_EVENT_TASK = "webhooks:deliver_event"


async def emit(
    session: AsyncSession,
    *,
    jobs: procrastinate.App | None,
    clock: Clock,
    org_id: str,
    api_mode: ApiMode,
    type: str,
    data: Mapping[str, Any],
) -> str:
    """Record an event for delivery to the organization's endpoints; returns its id.

    Call inside the transaction of the change the event reports. On commit, the NOTIFY wakes
    the dispatchers of running workers, one of which sends it at once. With `jobs`, a
    `webhooks:deliver_event` job is enqueued too: it delivers where the queue is run without a
    dispatcher (tests that drain it), and does nothing in a worker.
    """
    [event_id] = await emit_many(
        session, jobs=jobs, clock=clock, org_id=org_id, api_mode=api_mode, items=[(type, data)]
    )
    return event_id


async def emit_many(
    session: AsyncSession,
    *,
    jobs: procrastinate.App | None,
    clock: Clock,
    org_id: str,
    api_mode: ApiMode,
    items: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[str]:
    """`emit` for several events of one organization and mode at once: (type, data) each; their
    ids, in order. Whatever their number, the events are one statement, their deliveries one
    more, and the NOTIFY and the `deliver_event` job (which delivers everything due) one each."""
    unknown = sorted({type for type, _ in items} - events.EVENT_TYPES)
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; add them to ehiconnect.webhooks.events"
        )
    if not items:
        return []
    now = clock.now()
    event_ids = [events.new_event_id() for _ in items]
    rows = [
        {
            "event_id": event_id,
            "org_id": org_id,
            "api_mode": api_mode,
            "type": type,
            "data": dict(data),
            "created_at": now,
        }
        for event_id, (type, data) in zip(event_ids, items, strict=True)
    ]
    # Core statements, not the unit of work: emit sits on hot paths.
    await session.execute(insert(WebhookEvent), rows)
    scheduled = await session.execute(
        _SCHEDULE_NEW_EVENTS, {"event_ids": event_ids, "now": now, "pending": DELIVERY_PENDING}
    )
    if scheduled.first() is not None:
        await _announce(session, jobs, event_ids[0])
    return event_ids


# A pending delivery per new event and enabled endpoint of its org and mode whose filter takes
# the event's type (an empty filter takes every type).
_SCHEDULE_NEW_EVENTS = text(
    """
    INSERT INTO webhook_deliveries
        (event_id, endpoint_id, status, attempts, next_attempt_at, created_at)
    SELECT ev.event_id, e.endpoint_id, :pending, 0, :now, :now
    FROM webhook_events ev
    JOIN webhook_endpoints e ON e.org_id = ev.org_id AND e.api_mode = ev.api_mode
    WHERE ev.event_id = ANY(CAST(:event_ids AS varchar[])) AND e.status = 'enabled'
      AND (cardinality(e.event_types) = 0 OR ev.type = ANY(e.event_types))
    RETURNING 1
    """
)


async def resend(
    session: AsyncSession,
    *,
    jobs: procrastinate.App | None,
    clock: Clock,
    event_id: str,
    org_id: str | None = None,
    api_mode: str | None = None,
    endpoint_id: str | None = None,
) -> int:
    """Deliver an event again (same id) to its enabled endpoints, or to one; how many."""
    event = await session.get(WebhookEvent, event_id)
    if (
        event is None
        or (org_id is not None and event.org_id != org_id)
        or (api_mode is not None and event.api_mode != api_mode)
    ):
        raise NotFound(
            f"no webhook event has id {event_id}; list events with GET /v1/webhooks/events"
        )
    scheduled = await _schedule_deliveries(
        session,
        clock.now(),
        event.event_id,
        event.org_id,
        event.api_mode,
        event.type,
        endpoint_id=endpoint_id,
        restart=True,
    )
    if scheduled:
        await _announce(session, jobs, event.event_id)
    return scheduled


async def send_test_event(
    session: AsyncSession,
    *,
    jobs: procrastinate.App | None,
    clock: Clock,
    endpoint_id: str,
    org_id: str | None = None,
    api_mode: str | None = None,
) -> str:
    """Send a `webhook.test` event to one endpoint, whatever its event filter; the event id."""
    endpoint = await get_endpoint(session, endpoint_id, org_id=org_id, api_mode=api_mode)
    if endpoint.status != ENDPOINT_ENABLED:
        raise Conflict(
            f"endpoint {endpoint_id} is disabled ({endpoint.disabled_reason}); enable it first"
        )
    event_id = events.new_event_id()
    now = clock.now()
    session.add(
        WebhookEvent(
            event_id=event_id,
            org_id=endpoint.org_id,
            api_mode=endpoint.api_mode,
            type=EventType.WEBHOOK_TEST,
            data={"endpoint_id": endpoint_id, "message": "a test event from ehiconnect"},
            created_at=now,
        )
    )
    await session.flush()
    await _schedule_deliveries(
        session,
        now,
        event_id,
        endpoint.org_id,
        endpoint.api_mode,
        EventType.WEBHOOK_TEST,
        endpoint_id=endpoint_id,
        any_type=True,
    )
    await _announce(session, jobs, event_id)
    return event_id


async def _announce(session: AsyncSession, jobs: procrastinate.App | None, event_id: str) -> None:
    """Deliveries of `event_id` are due now: wake the dispatchers on commit (and queue a job)."""
    await notify_deliverers(session)
    if jobs is not None:
        await enqueue(session, jobs, DELIVER_EVENT_TASK, event_id=event_id)


async def _schedule_deliveries(
    session: AsyncSession,
    now: dt.datetime,
    event_id: str,
    org_id: str,
    api_mode: str,
    type: str,
    *,
    endpoint_id: str | None = None,
    restart: bool = False,
    any_type: bool = False,
) -> int:
    """Insert (or with `restart`, reset) a pending delivery per matching enabled endpoint."""
    matching = select(
        literal(event_id),
        WebhookEndpoint.endpoint_id,
        literal(DELIVERY_PENDING),
        literal(0),
        literal(now),
        literal(now),
    ).where(
        WebhookEndpoint.org_id == org_id,
        WebhookEndpoint.api_mode == api_mode,
        WebhookEndpoint.status == ENDPOINT_ENABLED,
    )
    if not any_type:
        matching = matching.where(
            or_(
                func.cardinality(WebhookEndpoint.event_types) == 0,
                WebhookEndpoint.event_types.any_() == type,
            )
        )
    if endpoint_id is not None:
        matching = matching.where(WebhookEndpoint.endpoint_id == endpoint_id)
    statement = insert(WebhookDelivery).from_select(
        ["event_id", "endpoint_id", "status", "attempts", "next_attempt_at", "created_at"],
        matching,
    )
    if restart:
        statement = statement.on_conflict_do_update(
            constraint="uq_webhook_deliveries_event_endpoint",
            set_={
                "status": DELIVERY_PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "claim_token": None,
                "completed_at": None,
            },
        )
    result = await session.execute(statement.returning(WebhookDelivery.id))
    return len(result.all())
