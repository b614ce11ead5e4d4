"""Fixtures for webhook integration tests: a frozen clock near real time, an organization,
and a loopback receiver."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest

from ehiconnect.clock import FrozenClock
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings, WebhookSettings
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.conftest import make_org
from tests.integration.webhooks.receiver import Receiver


class NoJitter:
    def uniform(self, a: float, b: float) -> float:
        return 0.0


@pytest.fixture
def clock() -> FrozenClock:
    # Near real time: receivers verify signatures with the standardwebhooks package, whose
    # timestamp check uses the wall clock.
    return FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def webhook_settings() -> WebhookSettings:
    return WebhookSettings(timeout_seconds=5)


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings, clock=clock) as opened:
        yield opened


@pytest.fixture
async def org(runtime: Runtime) -> CreatedOrg:
    return await make_org(runtime)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def receiver_server(receiver: Receiver) -> Iterator[ThreadedServer]:
    with serve_in_thread(receiver) as server:
        yield server
