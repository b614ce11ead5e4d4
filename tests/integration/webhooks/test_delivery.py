"""Delivery over real HTTP to loopback receivers, with the schedule run on a frozen clock."""

from __future__ import annotations

import datetime as dt

import pytest
import standardwebhooks
from sqlalchemy import func, select

from ehiconnect import signing
from ehiconnect.clock import FrozenClock
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.scope import OrgScope
from ehiconnect.settings import WebhookSettings
from ehiconnect.testing.servers import ThreadedServer, free_port, serve_in_thread
from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks import endpoints, outbox
from ehiconnect.webhooks.models import WebhookDelivery, WebhookEvent
from ehiconnect.webhooks.payloads import WebhookTest
from tests.integration.conftest import make_org
from tests.integration.webhooks.conftest import NoJitter
from tests.integration.webhooks.helpers import (
    add_endpoint,
    attempts_of,
    deliverer,
    delivery_row,
    emit,
    endpoint_row,
    run_schedule,
    sample_data,
)
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration


async def test_delivered_webhook_verifies_with_standardwebhooks(
    runtime: Runtime,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    endpoint = await add_endpoint(runtime, org.org_id, receiver_server.url + "/hooks")
    data = sample_data(EventType.EHI_EXPORT_SUCCESS, org_connection_id="c-1", task_id="a" * 32)
    event_id = await emit(runtime, org.org_id, type=EventType.EHI_EXPORT_SUCCESS, data=data)

    async with deliverer(runtime, webhook_settings) as sender:
        report = await sender.run_pass()

    assert report.succeeded == 1
    (got,) = receiver.received
    envelope = standardwebhooks.Webhook(endpoint.secret).verify(got.body, got.headers)
    assert envelope["id"] == event_id == got.webhook_id
    assert envelope["type"] == "patient.ehi_export_success"
    assert envelope["api_mode"] == "test"
    assert envelope["data"] == data
    assert got.headers["content-type"] == "application/json"
    assert (await delivery_row(runtime, event_id)).status == "succeeded"


async def test_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt(
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver_server: ThreadedServer,
    receiver: Receiver,
    webhook_settings: WebhookSettings,
) -> None:
    receiver.script.extend([500, 500, 500])
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/hooks")
    start = clock.now()
    event_id = await emit(runtime, org.org_id)

    async with deliverer(runtime, webhook_settings, rng=NoJitter()) as sender:
        await run_schedule(runtime, clock, sender)

    assert receiver.ids() == [event_id] * 4
    stamps = [
        int(r.headers["webhook-timestamp"]) - int(start.timestamp()) for r in receiver.received
    ]
    assert stamps == [0, 5, 5 + 300, 5 + 300 + 1800]
    assert len({r.headers["webhook-signature"] for r in receiver.received}) == 4
    attempts = await attempts_of(runtime, event_id)
    assert [a.status_code for a in attempts] == [500, 500, 500, 200]
    assert [a.attempt_number for a in attempts] == [1, 2, 3, 4]
    assert attempts[0].response_excerpt == "status 500"
    assert all(a.latency_ms >= 0 and a.error is None for a in attempts)
    delivery = await delivery_row(runtime, event_id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 4)


async def test_receiver_down_for_hours_gets_every_event_when_back(
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver: Receiver,
    webhook_settings: WebhookSettings,
) -> None:
    port = free_port()
    endpoint = await add_endpoint(runtime, org.org_id, f"http://127.0.0.1:{port}/in")
    emitted = [await emit(runtime, org.org_id, data={"n": n}) for n in range(5)]

    async with deliverer(runtime, webhook_settings, rng=NoJitter()) as sender:
        # Nobody listens for three hours: attempts at 0 s, 5 s, 5 min, 30 min and 2 h all fail.
        await run_schedule(runtime, clock, sender, until=clock.now() + dt.timedelta(hours=3))
        failed = await attempts_of(runtime, emitted[0])
        assert len(failed) == 5
        assert all(a.status_code is None and a.error for a in failed)
        assert (await endpoint_row(runtime, endpoint.endpoint_id)).failing_since is not None

        with serve_in_thread(receiver, port=port):
            late = await emit(runtime, org.org_id, data={"n": "late"})
            await run_schedule(runtime, clock, sender)

    assert sorted(receiver.ids()) == sorted([*emitted, late])
    for got in receiver.received:  # each signed when it was sent
        sent_at = int(got.headers["webhook-timestamp"])
        signing.verify(got.body, got.headers, endpoint.secret, now=sent_at)
    healed = await endpoint_row(runtime, endpoint.endpoint_id)
    assert (healed.status, healed.failing_since) == ("enabled", None)


async def test_410_disables_the_endpoint_at_once(
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    receiver.default_status = 410
    endpoint = await add_endpoint(runtime, org.org_id, receiver_server.url + "/gone")
    event_id = await emit(runtime, org.org_id)

    async with deliverer(runtime, webhook_settings) as sender:
        report = await run_schedule(runtime, clock, sender)
        assert report.disabled_endpoints == [endpoint.endpoint_id]
        after = await emit(runtime, org.org_id)
        await run_schedule(runtime, clock, sender)

    assert receiver.ids() == [event_id]
    row = await endpoint_row(runtime, endpoint.endpoint_id)
    assert row.status == "disabled"
    assert row.disabled_reason is not None
    assert "410" in row.disabled_reason
    assert (await delivery_row(runtime, event_id)).status == "failed"
    assert await attempts_of(runtime, after) == []


async def test_rotation_signs_with_old_and_new_secret_until_the_grace_ends(
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    endpoint = await add_endpoint(runtime, org.org_id, receiver_server.url + "/rot")
    async with runtime.database.transaction() as session:
        new_secret = await endpoints.rotate_secret(
            session,
            clock,
            runtime.cipher,
            OrgScope(org.org_id, "test"),
            endpoint.endpoint_id,
            grace=dt.timedelta(minutes=1),
        )
    async with deliverer(runtime, webhook_settings) as sender:
        await emit(runtime, org.org_id)
        await sender.run_pass()
        during = receiver.received[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        for secret in (endpoint.secret, new_secret):
            standardwebhooks.Webhook(secret).verify(during.body, during.headers)

        clock.advance(61)
        await emit(runtime, org.org_id)
        await sender.run_pass()
    after = receiver.received[-1]
    now = int(clock.now().timestamp())
    signing.verify(after.body, after.headers, new_secret, now=now)
    with pytest.raises(signing.SignatureError):
        signing.verify(after.body, after.headers, endpoint.secret, now=now)


async def test_endpoint_failing_for_five_days_is_disabled_with_a_warning(
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.default_status = 503
    endpoint = await add_endpoint(runtime, org.org_id, receiver_server.url + "/down")
    first_failure = clock.now()
    async with deliverer(runtime, webhook_settings, rng=NoJitter()) as sender:
        for day in range(1, 8):  # one new event a day, every attempt answered with 503
            await emit(runtime, org.org_id)
            day_ends = first_failure + dt.timedelta(days=day)
            await run_schedule(runtime, clock, sender, until=day_ends)
            if (await endpoint_row(runtime, endpoint.endpoint_id)).status == "disabled":
                break
            clock.advance((day_ends - clock.now()).total_seconds())

    row = await endpoint_row(runtime, endpoint.endpoint_id)
    assert row.status == "disabled"
    assert row.disabled_at is not None
    assert dt.timedelta(days=5) <= row.disabled_at - first_failure < dt.timedelta(days=6)
    assert "failed since" in (row.disabled_reason or "")
    assert any(r.getMessage() == "webhook endpoint disabled" for r in caplog.records)


async def test_events_reach_only_matching_endpoints(
    runtime: Runtime,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    await add_endpoint(
        runtime, org.org_id, receiver_server.url + "/exports", types=(EventType.EHI_EXPORT_FAILED,)
    )
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/live", mode="live")
    other = await make_other_org(runtime)
    await add_endpoint(runtime, other, receiver_server.url + "/other")

    wanted = await emit(runtime, org.org_id, type=EventType.EHI_EXPORT_FAILED)
    await emit(runtime, org.org_id, type=EventType.CONNECTION_SUCCESS)
    async with deliverer(runtime, webhook_settings) as sender:
        await sender.run_until_idle()

    assert receiver.ids() == [wanted]


async def make_other_org(runtime: Runtime) -> str:
    return (await make_org(runtime, name="Other Org")).org_id


async def emit_then_fail(runtime: Runtime, org_id: str) -> None:
    async with runtime.database.transaction() as session:
        await outbox.emit(
            session,
            clock=runtime.clock,
            org_id=org_id,
            api_mode="test",
            event=WebhookTest(),
        )
        raise RuntimeError("caller failed")


async def test_rolled_back_transaction_leaves_no_event(
    runtime: Runtime, org: CreatedOrg, receiver_server: ThreadedServer
) -> None:
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/tx")
    with pytest.raises(RuntimeError, match="caller failed"):
        await emit_then_fail(runtime, org.org_id)
    async with runtime.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
