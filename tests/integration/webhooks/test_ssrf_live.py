"""The SSRF guard on real deliveries: live-mode endpoints may not reach internal addresses."""

from __future__ import annotations

import pytest

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import WebhookSettings
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.webhooks.helpers import add_endpoint, attempts_of, deliverer, emit
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration


async def test_live_mode_refuses_internal_addresses_and_names_resolving_to_them(
    runtime: Runtime,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    port = receiver_server.port
    urls = [
        f"http://127.0.0.1:{port}/a",
        "http://10.0.0.1/b",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{port}/c",
        f"http://localhost:{port}/d",  # a hostname that resolves to loopback
    ]
    for url in urls:
        await add_endpoint(runtime, org.org_id, url, mode="live")
    event_id = await emit(runtime, org.org_id, mode="live")

    async with deliverer(runtime, webhook_settings) as sender:
        report = await sender.run_pass()

    assert report.claimed == len(urls)
    assert report.failed == len(urls)
    assert receiver.received == []
    attempts = await attempts_of(runtime, event_id)
    assert len(attempts) == len(urls)
    for attempt in attempts:
        assert attempt.status_code is None
        assert attempt.error is not None
        assert attempt.error.startswith("refused by the SSRF guard")


async def test_test_mode_and_the_explicit_setting_allow_loopback(
    runtime: Runtime,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
) -> None:
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/test", mode="test")
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/live", mode="live")
    test_event = await emit(runtime, org.org_id, mode="test")
    live_event = await emit(runtime, org.org_id, mode="live")

    allowing = WebhookSettings(timeout_seconds=5, allow_private_targets=True)
    async with deliverer(runtime, allowing) as sender:
        report = await sender.run_until_idle()

    assert report.succeeded == 2
    assert sorted(receiver.ids()) == sorted([test_event, live_event])


async def test_redirects_are_not_followed(
    runtime: Runtime,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    redirects = Receiver(default_status=307, headers={"location": receiver_server.url + "/x"})
    with serve_in_thread(redirects) as server:
        await add_endpoint(runtime, org.org_id, server.url + "/moved")
        event_id = await emit(runtime, org.org_id)
        async with deliverer(runtime, webhook_settings) as sender:
            await sender.run_pass()

    assert len(redirects.received) == 1
    assert receiver.received == []
    (attempt,) = await attempts_of(runtime, event_id)
    assert (attempt.status_code, attempt.outcome) == (307, "failed")
