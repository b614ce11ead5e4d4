"""A sandbox on a real loopback port, with a clock the tests move, and an app that talks to it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from ehiconnect.clock import FrozenClock
from ehiconnect.sandbox.app import build_sandbox_app
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.sandbox.smart_app import SmartApp


@pytest.fixture(scope="module")
def sandbox_clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="module")
def sandbox_app(sandbox_clock: FrozenClock) -> Starlette:
    return build_sandbox_app(clock=sandbox_clock)


@pytest.fixture(scope="module")
def sandbox_server(sandbox_app: Starlette) -> Iterator[ThreadedServer]:
    with serve_in_thread(sandbox_app) as server:
        yield server


@pytest.fixture
def sandbox_state(sandbox_app: Starlette, sandbox_server: ThreadedServer) -> Iterator[SandboxState]:
    """The live state; every system's faults are reset after each test."""
    state: SandboxState = sandbox_app.state.sandbox
    yield state
    for system in state.config.systems:
        state.reset_faults(system.slug)


@pytest.fixture
def http(sandbox_server: ThreadedServer, sandbox_state: SandboxState) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def harbor(
    http: httpx.Client, sandbox_server: ThreadedServer, sandbox_clock: FrozenClock
) -> SmartApp:
    return SmartApp(http, sandbox_server.url, "harbor", clock=sandbox_clock)


@pytest.fixture
def cedar(
    http: httpx.Client, sandbox_server: ThreadedServer, sandbox_clock: FrozenClock
) -> SmartApp:
    return SmartApp(http, sandbox_server.url, "cedar", clock=sandbox_clock)


@pytest.fixture
def summit(
    http: httpx.Client, sandbox_server: ThreadedServer, sandbox_clock: FrozenClock
) -> SmartApp:
    return SmartApp(http, sandbox_server.url, "summit", clock=sandbox_clock)
