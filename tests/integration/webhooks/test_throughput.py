"""What the faster delivery path (#17) must keep: events emitted in bulk reach exactly the
endpoints they would one by one, and kept-alive connections change nothing a receiver relies on."""

from __future__ import annotations

import pytest

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import WebhookSettings
from ehiconnect.testing.servers import ThreadedServer, free_port, serve_in_thread
from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks import outbox
from ehiconnect.webhooks.payloads import WebhookTest, payload_of
from tests.integration.webhooks.helpers import add_endpoint, attempts_of, deliverer, sample_data
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration


async def test_events_emitted_together_reach_each_matching_endpoint_once(
    runtime: Runtime, org: CreatedOrg, webhook_settings: WebhookSettings
) -> None:
    every, failures_only = Receiver(), Receiver()
    with serve_in_thread(every) as all_server, serve_in_thread(failures_only) as failed_server:
        await add_endpoint(runtime, org.org_id, all_server.url + "/hooks")
        await add_endpoint(
            runtime, org.org_id, failed_server.url + "/hooks", types=(EventType.EHI_EXPORT_FAILED,)
        )
        events = [
            payload_of(EventType.CONNECTION_SUCCESS, sample_data(EventType.CONNECTION_SUCCESS, 1)),
            payload_of(EventType.EHI_EXPORT_FAILED, sample_data(EventType.EHI_EXPORT_FAILED, 2)),
            payload_of(EventType.CONNECTION_SUCCESS, sample_data(EventType.CONNECTION_SUCCESS, 3)),
        ]
        async with runtime.database.transaction() as session:
            ids = await outbox.emit_many(
                session,
                clock=runtime.clock,
                org_id=org.org_id,
                api_mode="test",
                events=events,
            )
        async with deliverer(runtime, webhook_settings) as sender:
            report = await sender.run_until_idle()

    assert len(set(ids)) == 3
    assert report.succeeded == 4
    sent = {r.webhook_id: r.envelope for r in every.received}
    assert sorted(sent) == sorted(ids)
    for event_id, event in zip(ids, events, strict=True):
        assert (sent[event_id]["type"], sent[event_id]["data"]) == (event.event_type, event.data())
    assert failures_only.ids() == [ids[1]]


async def test_passes_to_one_receiver_reuse_one_kept_alive_connection(
    runtime: Runtime, org: CreatedOrg, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/hooks")
    one_at_a_time = WebhookSettings(timeout_seconds=5, batch_size=1)
    async with deliverer(runtime, one_at_a_time) as sender:
        for n in range(3):
            async with runtime.database.transaction() as session:
                await outbox.emit(
                    session,
                    clock=runtime.clock,
                    org_id=org.org_id,
                    api_mode="test",
                    event=WebhookTest.model_validate({"n": n}),
                )
            assert (await sender.run_pass()).succeeded == 1

    assert len(receiver.received) == 3
    assert len({r.client for r in receiver.received}) == 1  # one connection, three passes


async def test_a_kept_connection_the_receiver_closed_is_replaced_without_a_failed_attempt(
    runtime: Runtime, org: CreatedOrg, webhook_settings: WebhookSettings
) -> None:
    receiver = Receiver()
    port = free_port()
    await add_endpoint(runtime, org.org_id, f"http://127.0.0.1:{port}/hooks")
    async with deliverer(runtime, webhook_settings) as sender:
        with serve_in_thread(receiver, port=port):
            first = await _emit_test_event(runtime, org)
            assert (await sender.run_pass()).succeeded == 1
        # The receiver restarted: the connection kept from the first pass is closed.
        with serve_in_thread(receiver, port=port):
            second = await _emit_test_event(runtime, org)
            assert (await sender.run_pass()).succeeded == 1

    assert receiver.ids() == [first, second]
    assert [a.outcome for a in await attempts_of(runtime, second)] == ["succeeded"]


async def _emit_test_event(runtime: Runtime, org: CreatedOrg) -> str:
    async with runtime.database.transaction() as session:
        return await outbox.emit(
            session,
            clock=runtime.clock,
            org_id=org.org_id,
            api_mode="test",
            event=WebhookTest(),
        )


async def test_kept_connections_send_the_same_headers_and_never_replay_cookies(
    runtime: Runtime, org: CreatedOrg
) -> None:
    # Requests go out through the guarded transport without an httpx client around it (#17):
    # they carry what a client sent (raw bytes asked for, the user agent, a length), and a
    # cookie one answer sets is not sent back with the next delivery.
    receiver = Receiver(headers={"set-cookie": "session=abc; Path=/"})
    await add_endpoint_and_send_two(runtime, org, receiver)

    first, second = receiver.received
    for got in (first, second):
        assert got.headers["accept-encoding"] == "identity"
        assert got.headers["user-agent"] == "ehiconnect-webhooks/1"
        assert got.headers["content-type"] == "application/json"
        assert got.headers["content-length"] == str(len(got.body))
        assert got.headers["host"].startswith("127.0.0.1:")
        assert "cookie" not in got.headers
    assert first.client == second.client  # the second went over the kept connection


async def add_endpoint_and_send_two(runtime: Runtime, org: CreatedOrg, receiver: Receiver) -> None:
    with serve_in_thread(receiver) as server:
        await add_endpoint(runtime, org.org_id, server.url + "/hooks")
        async with deliverer(runtime, WebhookSettings(timeout_seconds=5, batch_size=1)) as sender:
            for n in range(2):
                async with runtime.database.transaction() as session:
                    await outbox.emit(
                        session,
                        clock=runtime.clock,
                        org_id=org.org_id,
                        api_mode="test",
                        event=WebhookTest.model_validate({"n": n}),
                    )
                assert (await sender.run_pass()).succeeded == 1
