"""The transactional outbox: events are written in the caller's transaction, with one delivery
per matching endpoint and a NOTIFY that wakes the workers' dispatchers when it commits. If the
caller's transaction rolls back, no event, delivery or notification remains; if it commits, all of
them do. An event is made through its payload model (`webhooks.payloads`), never as a bare dict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.clock import Clock
from ehiconnect.errors import Conflict
from ehiconnect.ids import ApiMode
from ehiconnect.scope import OrgScope
from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks.endpoints import get_endpoint
from ehiconnect.webhooks.events import new_event_id
from ehiconnect.webhooks.history import get_event
from ehiconnect.webhooks.models import (
    DELIVERY_PENDING,
    ENDPOINT_ENABLED,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from ehiconnect.webhooks.payloads import EventPayload, WebhookTest
from ehiconnect.webhooks.wakeup import notify_deliverers


async def emit(
    session: AsyncSession, *, clock: Clock, org_id: str, api_mode: ApiMode, event: EventPayload
) -> str:
    """Record `event` for delivery to the organization's endpoints; returns its id.

    Call inside the transaction of the change the event reports. On commit, the NOTIFY wakes
    the dispatchers of running workers, one of which sends it at once.
    """
    [event_id] = await emit_many(
        session, clock=clock, org_id=org_id, api_mode=api_mode, events=[event]
    )
    return event_id


async def emit_many(
    session: AsyncSession,
    *,
    clock: Clock,
    org_id: str,
    api_mode: ApiMode,
    events: Sequence[EventPayload],
) -> list[str]:
    """`emit` for several events of one organization and mode at once; their ids, in order.
    Whatever their number, the events are one statement, their deliveries one more, and the
    NOTIFY one."""
    if not events:
        return []
    now = clock.now()
    event_ids = [new_event_id() for _ in events]
    rows = [
        {
            "event_id": event_id,
            "org_id": org_id,
            "api_mode": api_mode,
            "type": event.event_type.value,
            "data": event.data(),
            "created_at": now,
        }
        for event_id, event in zip(event_ids, events, strict=True)
    ]
    # Core statements, not the unit of work: emit sits on hot paths.
    await session.execute(insert(WebhookEvent), rows)
    scheduled = await session.execute(
        _SCHEDULE_NEW_EVENTS, {"event_ids": event_ids, "now": now, "pending": DELIVERY_PENDING}
    )
    if scheduled.first() is not None:
        await notify_deliverers(session)
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
    clock: Clock,
    scope: OrgScope,
    event_id: str,
    endpoint_id: str | None = None,
) -> int:
    """Deliver an event of `scope` again (same id) to its enabled endpoints, or to one; how many."""
    event = await get_event(session, scope, event_id)
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
        await notify_deliverers(session)
    return scheduled


async def send_test_event(
    session: AsyncSession, *, clock: Clock, scope: OrgScope, endpoint_id: str
) -> str:
    """Send a `webhook.test` event to one endpoint, whatever its event filter; the event id."""
    endpoint = await get_endpoint(session, scope, endpoint_id)
    if endpoint.status != ENDPOINT_ENABLED:
        raise Conflict(
            f"endpoint {endpoint_id} is disabled ({endpoint.disabled_reason}); enable it first"
        )
    test = WebhookTest.model_validate(
        {"endpoint_id": endpoint_id, "message": "a test event from ehiconnect"}
    )
    event_id = new_event_id()
    now = clock.now()
    session.add(
        WebhookEvent(
            event_id=event_id,
            org_id=endpoint.org_id,
            api_mode=endpoint.api_mode,
            type=test.event_type.value,
            data=test.data(),
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
    await notify_deliverers(session)
    return event_id


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
