"""Steps shared by the webhook integration tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from ehiconnect.clock import FrozenClock
from ehiconnect.ids import ApiMode
from ehiconnect.runtime import Runtime
from ehiconnect.settings import WebhookSettings
from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks import endpoints, outbox
from ehiconnect.webhooks.delivery import Deliverer, PassReport
from ehiconnect.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ehiconnect.webhooks.payloads import payload_of
from ehiconnect.webhooks.schedule import UniformRandom


async def add_endpoint(
    runtime: Runtime, org_id: str, url: str, *, mode: ApiMode = "test", types: tuple[str, ...] = ()
) -> endpoints.CreatedEndpoint:
    async with runtime.database.transaction() as session:
        return await endpoints.add_endpoint(
            session,
            runtime.clock,
            runtime.cipher,
            org_id=org_id,
            api_mode=mode,
            url=url,
            event_types=types,
        )


async def emit(
    runtime: Runtime,
    org_id: str,
    *,
    mode: ApiMode = "test",
    type: str = EventType.WEBHOOK_TEST,
    data: dict[str, Any] | None = None,
) -> str:
    """Emit one event, its `data` through the type's payload model (by default `sample_data`)."""
    event = payload_of(type, sample_data(type) if data is None else data)
    async with runtime.database.transaction() as session:
        return await outbox.emit(
            session, clock=runtime.clock, org_id=org_id, api_mode=mode, event=event
        )


def sample_data(type: str, n: int = 1, **fields: Any) -> dict[str, Any]:
    """A valid `data` of an event type (docs/webhooks.md), its ids told apart by `n`; `fields`
    replace some. `webhook.test` takes anything: `{"n": n}`."""
    connection = {
        "org_connection_id": f"conn-{n}",
        "endpoint_id": "endpoint-1",
        "portal_id": "portal-1",
        "brand_id": None,
    }
    task = {"org_connection_id": f"conn-{n}", "task_id": f"{n:032x}", "org_id": "org-1"}
    samples: dict[str, dict[str, Any]] = {
        EventType.CONNECTION_SUCCESS: {
            **connection,
            "connection_status": "authorized",
            "platform_type": "epic",
            "scope": "patient/*.read offline_access",
            "consent_expires_at": None,
            "external_id": f"user-{n}",
            "external_state": None,
            "request_id": f"{n:032x}",
        },
        EventType.AUTHORIZATION_REVOKED: {
            **connection,
            "platform_type": "epic",
            "connection_status": "revoked",
        },
        EventType.EHI_EXPORT_SUCCESS: {
            **task,
            "download_links": [
                {
                    "url": f"https://ehi.example/v1/bridge/fhir/ehi-export/{n}/download/f",
                    "export_type": "jsonl",
                    "content_type": "application/fhir+ndjson",
                    "expires_at": "2026-12-01T00:00:00+00:00",
                    "size": 1234,
                    "sha256": "0" * 64,
                }
            ],
            "stats": {"total_resources": 3, "total_by_resource_type": {"Patient": 1}},
        },
        EventType.EHI_EXPORT_FAILED: {
            **task,
            "failure_reason": "timeout",
            "failure_description": f"export {n} ran out of time",
        },
        EventType.REQUEST_HEALTH_SYSTEM: {
            "email": "amy@example.com",
            "name": "Amy Patient",
            "subject": f"Please add clinic {n}",
            "body": "Riverside Family Practice, Boise ID",
            "external_id": None,
            "org_id": "org-1",
            "support_request_id": f"request-{n}",
        },
        EventType.WEBHOOK_TEST: {"n": n},
    }
    return {**samples[type], **fields}


def deliverer(
    runtime: Runtime, settings: WebhookSettings, rng: UniformRandom | None = None
) -> Deliverer:
    return Deliverer(runtime.database, runtime.clock, settings, runtime.cipher, rng=rng)


async def next_due(runtime: Runtime) -> dt.datetime | None:
    async with runtime.database.transaction() as session:
        return await session.scalar(
            select(func.min(WebhookDelivery.next_attempt_at))
            .join(WebhookEndpoint)
            .where(WebhookDelivery.status == "pending", WebhookEndpoint.status == "enabled")
        )


async def run_schedule(
    runtime: Runtime, clock: FrozenClock, sender: Deliverer, *, until: dt.datetime | None = None
) -> PassReport:
    """Jump the clock from one due time to the next, sending, until nothing is due (or `until`)."""
    total = PassReport()
    while True:
        report = await sender.run_until_idle()
        total.claimed += report.claimed
        total.succeeded += report.succeeded
        total.failed += report.failed
        total.disabled_endpoints += report.disabled_endpoints
        due = await next_due(runtime)
        if due is None or (until is not None and due > until):
            return total
        if due > clock.now():
            clock.advance((due - clock.now()).total_seconds())


async def attempts_of(runtime: Runtime, event_id: str) -> list[WebhookAttempt]:
    async with runtime.database.transaction() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id == event_id)
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
        )
        return list(rows.all())


async def endpoint_row(runtime: Runtime, endpoint_id: str) -> WebhookEndpoint:
    async with runtime.database.transaction() as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return row


async def delivery_row(runtime: Runtime, event_id: str) -> WebhookDelivery:
    async with runtime.database.transaction() as session:
        row = await session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
        )
        assert row is not None
        return row


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], what: str, *, timeout: float = 30.0
) -> None:
    """Wait until `condition` holds; fail naming `what` after `timeout` seconds.

    The timeout only keeps a broken test from hanging: tests that use it set every schedule they
    do not exercise (e.g. the sweep) to an hour, so passing proves the behaviour, not a speed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
