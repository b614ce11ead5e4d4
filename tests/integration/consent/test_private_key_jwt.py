"""Client authentication by private_key_jwt: the platform signs assertions the sandbox verifies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.tokens import fresh_access_token
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.app import build_sandbox_app
from ehiconnect.sandbox.config import Client, SandboxConfig
from ehiconnect.sandbox.systems import DEFAULT_CLIENTS
from ehiconnect.smart.client_keys import load_signer
from tests.integration.consent.conftest import Platform, endpoint_ids

CLIENT_ID = "ehiconnect-platform-jwt"


@pytest.fixture
def sandbox_app(tmp_path: Path) -> Starlette:
    # The platform's key is made in its data directory (the `settings` fixture's), registered
    # with the sandbox the way an operator registers the JWKS URL's content with a health system.
    signer = load_signer(tmp_path / "data")
    client = Client(client_id=CLIENT_ID, kind="confidential-asymmetric", jwks=signer.public_jwks())
    return build_sandbox_app(SandboxConfig(clients=(*DEFAULT_CLIENTS, client)))


async def test_connect_and_refresh_with_private_key_jwt(
    platform: Platform, runtime: Runtime
) -> None:
    endpoint_id = endpoint_ids(platform.sandbox.url)["harbor"]
    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, endpoint_id)
        assert endpoint is not None
        endpoint.client_id = CLIENT_ID
        endpoint.client_auth_method = "private_key_jwt"

    jwks = httpx.get(f"{platform.api.url}/.well-known/jwks.json").json()
    [key] = jwks["keys"]
    assert key["alg"] == "RS384"
    assert "d" not in key  # the private part never leaves the platform

    result = platform.connect("harbor", "tina")
    assert result["status"] == "success", result
    connection_id = result["org_connection_id"]
    # A refresh signs a fresh assertion (new jti), which the sandbox accepts.
    for _ in range(2):
        token = await fresh_access_token(
            runtime.database,
            runtime.cipher,
            runtime.clock,
            runtime.http,
            runtime.jobs,
            connection_id,
            margin=dt.timedelta(seconds=0),
            force=True,
            signer=runtime.client_signer,
        )
        assert token


async def test_an_unregistered_key_is_refused(platform: Platform, runtime: Runtime) -> None:
    endpoint_id = endpoint_ids(platform.sandbox.url)["harbor"]
    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, endpoint_id)
        assert endpoint is not None
        endpoint.client_id = "ehiconnect-asymmetric"  # the sandbox knows a different key for it
        endpoint.client_auth_method = "private_key_jwt"
    result = platform.connect("harbor", "tina")
    assert (result["status"], result["error"]) == ("failed", "token_exchange_failed")
