"""The worker's dispatcher on a real PostgreSQL and a real loopback receiver, on the system clock.

Every test sets the sweep interval to an hour: what arrives did so because a dispatcher was woken
by a NOTIFY or by a delivery falling due, never by the safety-net sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.runtime import Runtime
from ehiconnect.scope import OrgScope
from ehiconnect.settings import Settings, WebhookSettings
from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.webhooks import endpoints, outbox
from ehiconnect.webhooks.delivery import Deliverer
from ehiconnect.webhooks.dispatcher import Dispatcher
from ehiconnect.webhooks.models import WebhookDelivery
from ehiconnect.webhooks.payloads import WebhookTest
from ehiconnect.webhooks.wakeup import APPLICATION_NAME, CHANNEL, WakeupListener
from tests.integration.conftest import make_org
from tests.integration.webhooks.helpers import (
    add_endpoint,
    attempts_of,
    delivery_row,
    emit,
    eventually,
)
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

HOUR = 3600.0


@pytest.fixture
async def live_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime on the system clock: a dispatcher sleeps in real time until work is due."""
    async with Runtime.open(settings) as opened:
        yield opened


def hourly_sweep(**overrides: object) -> WebhookSettings:
    return WebhookSettings.model_validate(
        {"timeout_seconds": 5, "sweep_interval_seconds": HOUR, **overrides}
    )


@contextlib.asynccontextmanager
async def running_dispatcher(
    runtime: Runtime, settings: WebhookSettings
) -> AsyncIterator[tuple[Dispatcher, WakeupListener]]:
    """A dispatcher running in this event loop, already listening when the block starts."""
    listener = WakeupListener(runtime.database.url, settings)
    async with Deliverer(runtime.database, runtime.clock, settings, runtime.cipher) as deliverer:
        dispatcher = Dispatcher(deliverer, runtime.clock, settings, listener)
        task = asyncio.create_task(dispatcher.run())
        try:
            await eventually(
                lambda: listener.connections >= 1 or task.done(), "the dispatcher to LISTEN"
            )
            yield dispatcher, listener
        finally:
            dispatcher.stop()
            await task  # re-raises whatever stopped the dispatcher


async def test_an_emitted_event_goes_out_on_commit_without_waiting_for_a_sweep(
    live_runtime: Runtime, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    org = await make_org(live_runtime)
    await add_endpoint(live_runtime, org.org_id, receiver_server.url + "/hooks")
    async with running_dispatcher(live_runtime, hourly_sweep()) as (dispatcher, _):
        # No queue job: the NOTIFY of the emitting transaction is the only signal.
        event_id = await emit(live_runtime, org.org_id)
        await eventually(lambda: receiver.ids() == [event_id], "the event at the receiver")
        await eventually(lambda: dispatcher.totals.succeeded == 1, "the attempt to be recorded")

    delivery = await delivery_row(live_runtime, event_id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)


async def test_a_failed_delivery_is_retried_when_due_not_before(
    live_runtime: Runtime, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    receiver.script.append(500)
    org = await make_org(live_runtime)
    await add_endpoint(live_runtime, org.org_id, receiver_server.url + "/hooks")
    settings = hourly_sweep(retry_schedule_seconds=(0, 1.0), jitter_fraction=0)
    async with running_dispatcher(live_runtime, settings):
        event_id = await emit(live_runtime, org.org_id)
        # Nothing notifies about the retry: the dispatcher sleeps until it falls due.
        await eventually(lambda: len(receiver.received) == 2, "the retry at the receiver")

    first, second = await attempts_of(live_runtime, event_id)
    assert [first.status_code, second.status_code] == [500, 200]
    # Due 1 s after the first attempt began (retry delays count from the attempt).
    assert second.attempted_at - first.attempted_at >= dt.timedelta(seconds=1)
    assert (await delivery_row(live_runtime, event_id)).status == "succeeded"


async def test_deliveries_held_by_a_disabled_endpoint_go_out_when_it_is_enabled(
    live_runtime: Runtime, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    org = await make_org(live_runtime)
    endpoint = await add_endpoint(live_runtime, org.org_id, receiver_server.url + "/hooks")
    event_id = await emit(live_runtime, org.org_id)  # before any dispatcher runs
    scope = OrgScope(org.org_id, "test")
    async with live_runtime.database.transaction() as session:
        await endpoints.disable_endpoint(session, live_runtime.clock, scope, endpoint.endpoint_id)
    async with running_dispatcher(live_runtime, hourly_sweep()) as (dispatcher, _):
        assert receiver.ids() == []
        async with live_runtime.database.transaction() as session:
            await endpoints.enable_endpoint(
                session, live_runtime.clock, scope, endpoint.endpoint_id
            )
        await eventually(lambda: receiver.ids() == [event_id], "the held event at the receiver")
        await eventually(lambda: dispatcher.totals.succeeded == 1, "the attempt to be recorded")


async def test_a_dropped_listen_connection_is_reopened_and_wakes_the_dispatcher_again(
    live_runtime: Runtime, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    org = await make_org(live_runtime)
    await add_endpoint(live_runtime, org.org_id, receiver_server.url + "/hooks")
    async with running_dispatcher(live_runtime, hourly_sweep()) as (_, listener):
        async with live_runtime.database.transaction() as session:
            killed = await session.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            )
        assert killed == 1
        await eventually(lambda: listener.connections == 2, "the listener to reconnect")

        event_id = await emit(live_runtime, org.org_id)
        await eventually(lambda: receiver.ids() == [event_id], "the event at the receiver")


async def test_emit_notifies_once_per_committed_transaction_and_never_on_rollback(
    live_runtime: Runtime,
) -> None:
    org = await make_org(live_runtime)
    await add_endpoint(live_runtime, org.org_id, "http://127.0.0.1:9/unused")

    async def emit_in(session: AsyncSession, n: int) -> None:
        await outbox.emit(
            session,
            clock=live_runtime.clock,
            org_id=org.org_id,
            api_mode="test",
            event=WebhookTest.model_validate({"n": n}),
        )

    url = live_runtime.database.url
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listening:
        await listening.execute(f"LISTEN {CHANNEL}")
        with contextlib.suppress(RuntimeError):
            async with live_runtime.database.transaction() as session:
                await emit_in(session, 0)
                raise RuntimeError("the caller rolls back")
        async with live_runtime.database.transaction() as session:
            for n in range(1, 4):
                await emit_in(session, n)
        # Notifications arrive in commit order: everything emitted comes before this marker.
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as other:
            await other.execute(f"NOTIFY {CHANNEL}, 'marker'")
        payloads = []
        async for notification in listening.notifies(timeout=30):
            payloads.append(notification.payload)
            if notification.payload == "marker":
                break

    assert payloads == ["", "marker"]


async def test_two_dispatchers_share_the_work_and_never_send_a_delivery_twice(
    live_runtime: Runtime, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    receiver.delay_seconds = 0.05  # passes long enough to overlap
    org = await make_org(live_runtime)
    await add_endpoint(live_runtime, org.org_id, receiver_server.url + "/hooks")
    settings = hourly_sweep(batch_size=10, max_concurrent_passes=2)
    count = 200
    async with (
        running_dispatcher(live_runtime, settings) as (one, _),
        running_dispatcher(live_runtime, settings) as (two, _),
    ):
        async with live_runtime.database.transaction() as session:
            for n in range(count):
                await outbox.emit(
                    session,
                    clock=live_runtime.clock,
                    org_id=org.org_id,
                    api_mode="test",
                    event=WebhookTest.model_validate({"n": n}),
                )
        await eventually(
            lambda: one.totals.succeeded + two.totals.succeeded >= count, "every delivery"
        )

    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == count
    assert one.totals.claimed > 0, "both dispatchers took part"
    assert two.totals.claimed > 0, "both dispatchers took part"
    assert one.totals.claimed + two.totals.claimed == count
    async with live_runtime.database.transaction() as session:
        attempts = set(await session.scalars(select(WebhookDelivery.attempts)))
    assert attempts == {1}
