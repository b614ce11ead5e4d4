"""Connection status `refreshing` while a token refresh is in flight (#16 item 6, DESIGN §1):
visible to the customer's reads during the refresh, `authorized` after it whether it worked or
not, and repaired when a crash left it behind."""

from __future__ import annotations

import datetime as dt

import httpx
import psycopg
import pytest

from ehiconnect.connections.tokens import fresh_access_token
from ehiconnect.errors import TemporaryError
from ehiconnect.runtime import Runtime
from tests.integration.consent import conftest as consent_fixtures
from tests.integration.consent.conftest import Platform

sandbox_app = consent_fixtures.sandbox_app
sandbox = consent_fixtures.sandbox
platform_clock = consent_fixtures.platform_clock
settings = consent_fixtures.settings
api = consent_fixtures.api
org = consent_fixtures.org
browser = consent_fixtures.browser
platform = consent_fixtures.platform

MARGIN = dt.timedelta(seconds=300)


def _status(platform: Platform, connection_id: str) -> str:
    """What the customer's backend reads, with its private key."""
    response = httpx.get(
        f"{platform.api.url}/v1/bridge/org_connection/{connection_id}",
        auth=platform.auth(),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    status: str = response.json()["data"]["status"]
    return status


class WatchingTransport(httpx.AsyncBaseTransport):
    """Reads the connection's status over the API when the token request goes out, then sends
    the request on (or fails it, as a health system that cannot be reached would)."""

    def __init__(self, platform: Platform, connection_id: str, *, fail: bool = False) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._platform = platform
        self._connection_id = connection_id
        self._fail = fail
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/token"):
            # A blocking read from another thread's server is fine here: the API runs apart.
            self.seen.append(_status(self._platform, self._connection_id))
            if self._fail:
                raise httpx.ConnectError("the token endpoint cannot be reached", request=request)
        return await self._inner.handle_async_request(request)


async def _refresh(runtime: Runtime, http: httpx.AsyncClient, connection_id: str) -> str:
    return await fresh_access_token(
        runtime.database,
        runtime.cipher,
        runtime.clock,
        http,
        runtime.jobs,
        connection_id,
        margin=MARGIN,
        force=True,
    )


async def test_readers_see_refreshing_while_the_refresh_is_in_flight(
    platform: Platform, runtime: Runtime
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    watcher = WatchingTransport(platform, connection_id)
    async with httpx.AsyncClient(transport=watcher) as http:
        await _refresh(runtime, http, connection_id)

    assert watcher.seen == ["refreshing"]
    assert _status(platform, connection_id) == "authorized"


async def test_a_failed_refresh_leaves_the_connection_authorized(
    platform: Platform, runtime: Runtime
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    watcher = WatchingTransport(platform, connection_id, fail=True)
    async with httpx.AsyncClient(transport=watcher) as http:
        with pytest.raises(TemporaryError, match="did not answer"):
            await _refresh(runtime, http, connection_id)

    assert watcher.seen == ["refreshing"]
    assert _status(platform, connection_id) == "authorized"


async def test_refreshing_left_by_a_crash_is_repaired_by_the_next_refresh_call(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    with psycopg.connect(database_url) as conn:  # a worker killed mid-refresh left this
        conn.execute(
            "UPDATE org_connections SET status = 'refreshing' WHERE org_connection_id = %s",
            (connection_id,),
        )
    assert _status(platform, connection_id) == "refreshing"

    # The token is still good: no refresh happens, but the status is put right.
    await fresh_access_token(
        runtime.database,
        runtime.cipher,
        runtime.clock,
        runtime.http,
        runtime.jobs,
        connection_id,
        margin=MARGIN,
    )

    assert _status(platform, connection_id) == "authorized"


async def test_a_refresh_holding_the_lock_is_not_settled_by_another_caller(
    platform: Platform, runtime: Runtime
) -> None:
    """While one refresh runs, a second caller's repair must not report `authorized`."""
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    seen_by_second: list[str] = []

    class SecondCallerInside(WatchingTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/auth/token") and not seen_by_second:
                # Another process asks for a token while this refresh holds the lock: its token
                # is still good, so it returns at once, and tries to settle the status.
                await fresh_access_token(
                    runtime.database,
                    runtime.cipher,
                    runtime.clock,
                    runtime.http,
                    runtime.jobs,
                    connection_id,
                    margin=MARGIN,
                )
                seen_by_second.append(_status(platform, connection_id))
            return await super().handle_async_request(request)

    async with httpx.AsyncClient(transport=SecondCallerInside(platform, connection_id)) as http:
        await _refresh(runtime, http, connection_id)

    assert seen_by_second == ["refreshing"]
    assert _status(platform, connection_id) == "authorized"
