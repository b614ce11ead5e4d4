"""Calls to a health system's authorization server pass the address guard in live mode.

The token endpoint comes from the health system's own discovery document (or an imported
catalog), so a hostile or mistaken one could point the platform's token requests, which carry
authorization codes, refresh tokens and client credentials, at an address inside our network.
In live mode such addresses are refused unless the operator marked the endpoint
`allow_private_network`; test mode keeps loopback (the sandbox runs there).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.refresh_policy import RefreshMargin
from ehiconnect.connections.tokens import fresh_access_token, store_tokens
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError
from ehiconnect.runtime import Runtime
from ehiconnect.smart.client import TokenResponse
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.consent.conftest import Platform

pytestmark = pytest.mark.integration

ENDPOINT_ID = "onprem-auth"


@pytest.fixture
def onprem() -> Iterator[tuple[list[str], ThreadedServer]]:
    """An on-premises health system's token endpoint on loopback; records every request."""
    seen: list[str] = []

    async def token(request: Request) -> Response:
        seen.append(request.url.path)
        return JSONResponse(
            {"access_token": "fresh", "token_type": "Bearer", "expires_in": 3600},
            headers={"Cache-Control": "no-store"},
        )

    async def discovery(request: Request) -> Response:
        seen.append(request.url.path)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "code_challenge_methods_supported": ["S256"],
            }
        )

    app = Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/fhir/.well-known/smart-configuration", discovery),
        ]
    )
    with serve_in_thread(app) as server:
        yield seen, server


async def _live_connection(runtime: Runtime, platform: Platform, base: str) -> str:
    connection_id = str(uuid.uuid4())
    async with runtime.database.transaction() as session:
        session.add(
            CatalogEndpoint(
                id=ENDPOINT_ID,
                url=f"{base}/fhir",
                name="On-premises EHR",
                platform_type="generic",
                sandbox=False,
                source="test",
                client_id="ehiconnect",
                token_endpoint=f"{base}/token",
            )
        )
        session.add(
            OrgConnection(
                org_connection_id=connection_id,
                org_id=platform.org.org_id,
                api_mode="live",
                catalog_endpoint_id=ENDPOINT_ID,
                platform_type="generic",
                status="authorized",
                scope="launch/patient patient/*.rs offline_access",
                fhir_base_url=f"{base}/fhir",
                source_patient_id="p1",
            )
        )
        await session.flush()
        await store_tokens(
            session,
            runtime.cipher,
            runtime.clock,
            connection_id,
            TokenResponse(
                access_token="expired",
                token_type="Bearer",
                expires_in=1,
                scope=None,
                refresh_token="refresh-me",
                patient="p1",
                raw_keys=frozenset(),
            ),
        )
        row = await session.get(ConnectionTokens, connection_id)
        assert row is not None
        row.access_expires_at = runtime.clock.now() - dt.timedelta(minutes=1)  # refresh due
    return connection_id


async def _token(runtime: Runtime, connection_id: str) -> str:
    return await fresh_access_token(
        runtime.database,
        runtime.cipher,
        runtime.clock,
        runtime.http,
        runtime.jobs,
        connection_id,
        margin=RefreshMargin(300, 0.25),
    )


async def test_a_live_refresh_to_a_private_address_is_refused_until_the_operator_allows_it(
    runtime: Runtime, platform: Platform, onprem: tuple[list[str], ThreadedServer]
) -> None:
    seen, server = onprem
    connection_id = await _live_connection(runtime, platform, server.url)

    with pytest.raises(FatalError, match="allow-private-network") as refused:
        await _token(runtime, connection_id)
    assert refused.value.failure_reason == "token_refresh_failure"
    assert seen == []  # the refresh token was sent nowhere
    async with runtime.database.transaction() as session:
        connection = await session.get(OrgConnection, connection_id)
        assert connection is not None
        assert connection.status != "revoked"  # a platform refusal is not the patient's doing

    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, ENDPOINT_ID)
        assert endpoint is not None
        endpoint.allow_private_network = True
    assert await _token(runtime, connection_id) == "fresh"
    assert seen == ["/token"]


async def test_a_live_connect_does_not_discover_at_a_private_address(
    runtime: Runtime, platform: Platform, onprem: tuple[list[str], ThreadedServer]
) -> None:
    seen, server = onprem
    await _live_connection(runtime, platform, server.url)
    url = platform.connect_url("harbor").replace(
        platform.org.keys["test"].public_id, platform.org.keys["live"].public_id
    )
    url = url.replace(f"endpoint_id={_sandbox_id(url)}", f"endpoint_id={ENDPOINT_ID}")
    page = platform.start(url)
    assert page.status_code >= 400
    assert "allow-private-network" in page.text
    assert seen == []

    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, ENDPOINT_ID)
        assert endpoint is not None
        endpoint.allow_private_network = True
    started = platform.start(url)
    assert started.status_code == 302, started.text
    assert started.headers["location"].startswith(f"{server.url}/authorize")
    assert seen == ["/fhir/.well-known/smart-configuration"]


def _sandbox_id(url: str) -> str:
    return url.split("endpoint_id=", 1)[1].split("&", 1)[0]
