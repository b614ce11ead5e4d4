"""The console over real HTTP: the platform API (console mounted) and the sandbox on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ehiconnect.testing.servers import ThreadedServer
from tests.integration.consent.conftest import (  # noqa: F401 (fixtures)
    api,
    browser,
    org,
    platform,
    platform_clock,
    sandbox,
    sandbox_app,
    sandbox_state,
    settings,
)
from tests.integration.console.support import ConsoleClient, console_client


@pytest.fixture
def console(api: ThreadedServer) -> Iterator[ConsoleClient]:  # noqa: F811
    with console_client(api.url) as http:
        yield ConsoleClient(http)


@pytest.fixture
def other_console(api: ThreadedServer) -> Iterator[ConsoleClient]:  # noqa: F811
    """A second browser (another person)."""
    with console_client(api.url) as http:
        yield ConsoleClient(http)
