"""The console's pages over HTTP with real rows behind them: what each panel counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.console.support import ConsoleClient, add_account, deliver_once
from tests.integration.webhooks.helpers import add_endpoint, emit
from tests.integration.webhooks.receiver import Receiver


@pytest.fixture
def failing_receiver() -> Iterator[tuple[Receiver, ThreadedServer]]:
    receiver = Receiver(default_status=503)
    with serve_in_thread(receiver) as server:
        yield receiver, server


async def test_failed_webhook_attempts_are_grouped_by_endpoint_and_status(
    runtime: Runtime,
    api: ThreadedServer,
    org: CreatedOrg,
    console: ConsoleClient,
    failing_receiver: tuple[Receiver, ThreadedServer],
) -> None:
    receiver, server = failing_receiver
    endpoint = await add_endpoint(runtime, org.org_id, f"{server.url}/hooks")
    for _ in range(3):
        await emit(runtime, org.org_id)
    await deliver_once(runtime)
    assert len(receiver.received) >= 3
    await add_account(runtime, "ops@example.org")
    console.login("ops@example.org")

    page = console.get("/console/failures?days=7")

    assert page.status_code == 200, page.text
    assert "HTTP 503" in page.text
    assert f"{server.url}/hooks" in page.text
    cases = console.get(
        f"/console/webhooks/deliveries?endpoint={endpoint.endpoint_id}&code=503&days=7"
    )
    assert cases.status_code == 200
    assert cases.text.count("webhook.test") == 3
    for path in ("/console/", "/console/webhooks", "/console/exports", "/console/connections"):
        assert console.get(path).status_code == 200, path
