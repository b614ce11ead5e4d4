"""The API over real HTTP: envelope everywhere, key authentication, modes and org isolation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from ehiconnect.api.app import create_app
from ehiconnect.connections.service import add_connection
from ehiconnect.orgs.service import CreatedOrg, rotate_key
from ehiconnect.runtime import Runtime
from ehiconnect.scope import OrgScope
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import serve_in_thread
from tests.integration.conftest import make_org


async def _connection(runtime: Runtime, org: CreatedOrg, mode: str) -> str:
    async with runtime.database.transaction() as session:
        connection = await add_connection(
            session,
            org_id=org.org_id,
            api_mode="test" if mode == "test" else "live",
            endpoint_id="sandbox-general",
            platform_type="sandbox",
            scope="patient/*.rs offline_access",
        )
        return connection.org_connection_id


def _envelope_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"] == code
    description: str = body["error_description"]
    assert description
    return description


async def test_org_card_answers_with_the_envelope(runtime: Runtime, http: httpx.Client) -> None:
    org = await make_org(runtime, "Acme Health", privacy_policy_url="https://acme.example/privacy")
    response = http.get("/v1/bridge/org", params={"public_id": org.keys["test"].public_id})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["data"]["name"] == "Acme Health"
    assert body["data"]["privacy_policy_url"] == "https://acme.example/privacy"
    assert body["data"]["api_mode"] == "test"


async def test_public_id_of_the_wrong_mode_is_refused(runtime: Runtime, http: httpx.Client) -> None:
    org = await make_org(runtime)
    response = http.get(
        "/v1/bridge/org", params={"public_id": org.keys["test"].public_id, "api_mode": "live"}
    )
    assert "live public id" in _envelope_error(response, 403, "api_mode_mismatch")
    unknown = http.get(
        "/v1/bridge/org", params={"public_id": "public_test_000000000000000000000000"}
    )
    _envelope_error(unknown, 404, "not_found")


async def test_basic_and_bearer_both_read_own_connection(
    runtime: Runtime, http: httpx.Client
) -> None:
    org = await make_org(runtime)
    connection_id = await _connection(runtime, org, "test")
    pair = org.keys["test"]
    for auth in (
        {"auth": (pair.public_id, pair.private_key)},
        {"headers": {"Authorization": f"Bearer {pair.private_key}"}},
    ):
        response = http.get(f"/v1/bridge/org_connection/{connection_id}", **auth)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["org_connection_id"] == connection_id
        assert data["org_id"] == org.org_id
        assert data["api_mode"] == "test"
        assert data["status"] == "authorized"
        assert set(data) >= {
            "catalog_brand_id",
            "catalog_portal_id",
            "catalog_endpoint_id",
            "platform_type",
            "scope",
            "consent_expires_at",
        }


@pytest.mark.parametrize(
    ("headers", "auth", "hint"),
    [
        ({}, None, "no credentials"),
        ({"Authorization": "Bearer private_test_not-a-real-key"}, None, "not valid"),
        ({"Authorization": "Bearer sk_live_123"}, None, "malformed"),
        ({"Authorization": "Token abc"}, None, "unsupported"),
        ({"Authorization": "Basic !!!"}, None, "base64"),
    ],
)
async def test_missing_or_wrong_keys_get_401(
    runtime: Runtime,
    http: httpx.Client,
    headers: dict[str, str],
    auth: tuple[str, str] | None,
    hint: str,
) -> None:
    org = await make_org(runtime)
    connection_id = await _connection(runtime, org, "test")
    response = http.get(f"/v1/bridge/org_connection/{connection_id}", headers=headers)
    assert hint in _envelope_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_private_key_must_belong_to_the_public_id(
    runtime: Runtime, http: httpx.Client
) -> None:
    org_a = await make_org(runtime, "A")
    org_b = await make_org(runtime, "B")
    connection_id = await _connection(runtime, org_a, "test")
    mixed = (org_b.keys["test"].public_id, org_a.keys["test"].private_key)
    response = http.get(f"/v1/bridge/org_connection/{connection_id}", auth=mixed)
    _envelope_error(response, 401, "unauthorized")


async def test_test_key_cannot_act_in_live_mode(runtime: Runtime, http: httpx.Client) -> None:
    org = await make_org(runtime)
    live_connection = await _connection(runtime, org, "live")
    test_pair = org.keys["test"]
    response = http.get(
        f"/v1/bridge/org_connection/{live_connection}",
        auth=(test_pair.public_id, test_pair.private_key),
    )
    assert "live key" in _envelope_error(response, 403, "api_mode_mismatch")
    live_pair = org.keys["live"]
    allowed = http.get(
        f"/v1/bridge/org_connection/{live_connection}",
        auth=(live_pair.public_id, live_pair.private_key),
    )
    assert allowed.status_code == 200


async def test_one_org_never_sees_another_orgs_connection(
    runtime: Runtime, http: httpx.Client
) -> None:
    org_a = await make_org(runtime, "A")
    org_b = await make_org(runtime, "B")
    b_connection = await _connection(runtime, org_b, "test")
    a_pair = org_a.keys["test"]
    foreign = http.get(
        f"/v1/bridge/org_connection/{b_connection}", auth=(a_pair.public_id, a_pair.private_key)
    )
    missing = http.get(
        "/v1/bridge/org_connection/00000000-0000-4000-8000-000000000000",
        auth=(a_pair.public_id, a_pair.private_key),
    )
    # Indistinguishable from a connection that does not exist: no existence oracle.
    assert _envelope_error(foreign, 404, "not_found").replace(b_connection, "X") == _envelope_error(
        missing, 404, "not_found"
    ).replace("00000000-0000-4000-8000-000000000000", "X")


async def test_rotated_key_works_during_grace_then_stops(
    runtime: Runtime, http: httpx.Client
) -> None:
    org = await make_org(runtime)
    connection_id = await _connection(runtime, org, "test")
    old = org.keys["test"]
    async with runtime.database.transaction() as session:
        new = await rotate_key(
            session, runtime.clock, OrgScope(org.org_id, "test"), grace=dt.timedelta(hours=1)
        )
    assert new.public_id == old.public_id
    assert new.private_key != old.private_key
    path = f"/v1/bridge/org_connection/{connection_id}"
    assert http.get(path, auth=(old.public_id, old.private_key)).status_code == 200
    assert http.get(path, auth=(new.public_id, new.private_key)).status_code == 200
    async with runtime.database.transaction() as session:
        newest = await rotate_key(
            session, runtime.clock, OrgScope(org.org_id, "test"), grace=dt.timedelta(0)
        )
    expired = http.get(path, auth=(old.public_id, old.private_key))
    assert "rotated out" in _envelope_error(expired, 401, "unauthorized")
    assert http.get(path, auth=(new.public_id, new.private_key)).status_code == 401
    assert http.get(path, auth=(newest.public_id, newest.private_key)).status_code == 200


def test_framework_errors_use_the_envelope(http: httpx.Client) -> None:
    _envelope_error(http.get("/v1/no/such/path"), 404, "not_found")
    _envelope_error(http.post("/healthz"), 405, "method_not_allowed")
    assert "public_id" in _envelope_error(http.get("/v1/bridge/org"), 422, "invalid_request")


def test_health_and_openapi(http: httpx.Client) -> None:
    health = http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["data"]["status"] == "ok"
    spec = http.get("/openapi.json").json()
    assert "/v1/bridge/org" in spec["paths"]
    assert "/v1/bridge/org_connection/{org_connection_id}" in spec["paths"]


def test_unexpected_errors_are_500_with_the_envelope(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("private_test_secretvalue leaked?")

    with serve_in_thread(app) as server:
        response = httpx.get(f"{server.url}/boom")
    description = _envelope_error(response, 500, "internal_error")
    assert "secretvalue" not in description
    assert response.headers["x-request-id"] in description


@pytest.fixture
def limited_api(settings: Settings) -> Iterator[str]:
    settings.api.public_rate_limit_per_minute = 6
    settings.api.public_rate_limit_burst = 3
    with serve_in_thread(create_app(settings)) as server:
        yield server.url


async def test_public_endpoints_are_rate_limited(runtime: Runtime, limited_api: str) -> None:
    org = await make_org(runtime)
    params = {"public_id": org.keys["test"].public_id}
    with httpx.Client(base_url=limited_api) as client:
        statuses = [client.get("/v1/bridge/org", params=params).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/v1/bridge/org", params=params)
    _envelope_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
