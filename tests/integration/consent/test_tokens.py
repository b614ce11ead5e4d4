"""Token refresh with rotation, refusal at the source, and revocation, over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import psycopg
import pytest

from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tokens import fresh_access_token, open_tokens
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import ReconsentRequired
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from tests.integration.consent.conftest import Platform

MARGIN = dt.timedelta(seconds=300)


async def _tokens(runtime: Runtime, connection_id: str) -> tuple[str, str | None]:
    async with runtime.database.transaction() as session:
        row = await session.get(ConnectionTokens, connection_id)
        assert row is not None
        tokens = open_tokens(runtime.cipher, row)
    return tokens.access_token, tokens.refresh_token


async def _refresh(runtime: Runtime, connection_id: str, *, force: bool = True) -> str:
    return await fresh_access_token(
        runtime.database,
        runtime.cipher,
        runtime.clock,
        runtime.http,
        runtime.jobs,
        connection_id,
        margin=MARGIN,
        force=force,
    )


def _token_grant(platform: Platform, refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{platform.sandbox.url}/harbor/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "ehiconnect-public",
        },
    )


async def _patient_read(
    platform: Platform, runtime: Runtime, connection_id: str, token: str
) -> int:
    async with runtime.database.transaction() as session:
        connection = await session.get(OrgConnection, connection_id)
        assert connection is not None
        assert connection.source_patient_id
        url = f"{connection.fhir_base_url}/Patient/{connection.source_patient_id}"
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code


async def test_refresh_rotates_and_persists_the_refresh_token(
    platform: Platform, runtime: Runtime
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    old_access, old_refresh = await _tokens(runtime, connection_id)
    assert old_refresh is not None

    # Not expiring soon and not forced: the stored token comes back untouched.
    assert await _refresh(runtime, connection_id, force=False) == old_access

    new_access = await _refresh(runtime, connection_id)
    stored_access, new_refresh = await _tokens(runtime, connection_id)
    assert new_access == stored_access != old_access
    assert new_refresh is not None
    assert new_refresh != old_refresh
    assert await _patient_read(platform, runtime, connection_id, new_access) == 200
    # The rotated-out refresh token no longer works at the source.
    refused = _token_grant(platform, old_refresh)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


async def test_concurrent_refreshes_are_serialized(platform: Platform, runtime: Runtime) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    # Unserialized, the second would present a refresh token the first had just rotated out,
    # get invalid_grant, and revoke the connection.
    tokens = await asyncio.gather(*(_refresh(runtime, connection_id) for _ in range(3)))
    assert len(set(tokens)) == 3
    async with runtime.database.transaction() as session:
        connection = await session.get(OrgConnection, connection_id)
        assert connection is not None
        assert connection.status == "authorized"


async def test_invalid_grant_revokes_the_connection_and_emits_the_event(
    platform: Platform, runtime: Runtime, sandbox_state: SandboxState, database_url: str
) -> None:
    result = platform.connect("harbor", "amy")
    connection_id = result["org_connection_id"]
    sandbox_state.set_faults("harbor", Faults(refresh_invalid_grant=True))
    with pytest.raises(ReconsentRequired, match="connect again"):
        await _refresh(runtime, connection_id)
    read = httpx.get(
        f"{platform.api.url}/v1/bridge/org_connection/{connection_id}", auth=platform.auth()
    ).json()["data"]
    assert read["status"] == "revoked"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM connection_tokens").fetchone() == (0,)
        [(data,)] = conn.execute(
            "SELECT data FROM webhook_events WHERE type = 'patient.authorization_revoked'"
        ).fetchall()
    assert data["org_connection_id"] == connection_id
    assert data["connection_status"] == "revoked"
    with pytest.raises(ReconsentRequired):
        await _refresh(runtime, connection_id)


async def test_delete_revokes_at_the_source_and_purges_tokens(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    access, _ = await _tokens(runtime, connection_id)
    assert await _patient_read(platform, runtime, connection_id, access) == 200

    url = f"{platform.api.url}/v1/bridge/org_connection/{connection_id}"
    deleted = httpx.delete(url, auth=platform.auth())
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["status"] == "revoked"
    assert await _patient_read(platform, runtime, connection_id, access) == 401
    again = httpx.delete(url, auth=platform.auth())
    assert again.json()["data"]["status"] == "revoked"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM connection_tokens").fetchone() == (0,)
        events = conn.execute(
            "SELECT count(*) FROM webhook_events WHERE type = 'patient.authorization_revoked'"
        ).fetchone()
        kinds = [r[0] for r in conn.execute("SELECT event FROM consent_records ORDER BY id")]
    assert events == (1,)  # the second DELETE is idempotent
    assert kinds == ["granted", "revoked"]


async def test_another_org_cannot_revoke(platform: Platform, runtime: Runtime) -> None:
    from tests.integration.conftest import make_org

    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    other = await make_org(runtime, "Other")
    pair = other.keys["test"]
    response = httpx.delete(
        f"{platform.api.url}/v1/bridge/org_connection/{connection_id}",
        auth=(pair.public_id, pair.private_key),
    )
    assert response.status_code == 404
    read = httpx.get(
        f"{platform.api.url}/v1/bridge/org_connection/{connection_id}", auth=platform.auth()
    ).json()["data"]
    assert read["status"] == "authorized"
