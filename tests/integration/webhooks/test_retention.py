"""Attempt logs are kept 15 days and events 30 (both settings)."""

from __future__ import annotations

import pytest

from ehiconnect.clock import FrozenClock
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.scope import OrgScope
from ehiconnect.settings import WebhookSettings
from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.webhooks.history import list_events, purge_expired
from tests.integration.webhooks.helpers import add_endpoint, attempts_of, deliverer, emit

pytestmark = pytest.mark.integration

DAY = 86400


async def purge(runtime: Runtime, settings: WebhookSettings) -> tuple[int, int]:
    async with runtime.database.transaction() as session:
        return await purge_expired(
            session,
            runtime.clock.now(),
            log_retention=settings.log_retention,
            event_retention=settings.event_retention,
        )


async def test_logs_expire_after_15_days_and_events_after_30(
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/r")
    event_id = await emit(runtime, org.org_id)
    async with deliverer(runtime, webhook_settings) as sender:
        await sender.run_pass()

    clock.advance(15 * DAY - 1)
    assert await purge(runtime, webhook_settings) == (0, 0)
    clock.advance(2)
    assert await purge(runtime, webhook_settings) == (1, 0)
    assert await attempts_of(runtime, event_id) == []

    clock.advance(15 * DAY)
    assert await purge(runtime, webhook_settings) == (0, 1)
    async with runtime.database.transaction() as session:
        page = await list_events(session, OrgScope(org.org_id, "test"))
    assert page.events == []
