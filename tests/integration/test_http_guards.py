"""The edge guards of the three web apps over real HTTP: hostile URLs, big bodies, forwarded
addresses, framing and sniffing (issue 11, items 3, 4, 7 and 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ehiconnect.api.app import create_app
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.app import build_sandbox_app
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker.process import open_tracker
from ehiconnect.tracker.receiver import build_tracker_app
from ehiconnect.tracker.settings import TrackerSettings
from tests.integration.conftest import make_org
from tests.integration.sandbox.smart_app import SmartApp

MIB = 1024 * 1024


def _envelope_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"] == code
    description: str = body["error_description"]
    assert description
    return description


def _outcome(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics: str = body["issue"][0]["diagnostics"]
    return diagnostics


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (httpx sends it chunked)."""
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        yield chunk


def _auth(org: CreatedOrg) -> tuple[str, str]:
    keys = org.keys["test"]
    return (keys.public_id, keys.private_key)


# --- platform: URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/v1/bridge/org?public_id={public_id}%00"),
        ("GET", "/v1/bridge/org?public_id=%FF%FE"),
        ("GET", "/v1/bridge/catalog?public_id={public_id}&api_mode=test&brand_id=a%00"),
        ("GET", "/v1/bridge/connect?public_id={public_id}&brand_id=b&endpoint_id=e%00"),
        ("GET", "/v1/bridge/reconnect?public_id={public_id}&reconnect_org_connection_id=%00"),
        ("POST", "/v1/bridge/catalog/search?public_id={public_id}%00&api_mode=test"),
        ("GET", "/v1/webhooks/events?type=a%00"),
        ("POST", "/v1/webhooks/endpoints/ab%00cd/disable"),
        ("POST", "/v1/webhooks/events/ab%00cd/resend"),
        ("GET", "/v1/bridge/org_connection/ab%0Acd"),
    ],
)
async def test_control_characters_in_platform_urls_are_400_with_the_envelope(
    runtime: Runtime, http: httpx.Client, method: str, url: str
) -> None:
    org = await make_org(runtime)
    target = url.format(public_id=org.keys["test"].public_id)
    response = http.request(method, target, auth=_auth(org), json={})
    description = _envelope_error(response, 400, "invalid_request")
    assert "control character" in description or "UTF-8" in description
    assert org.keys["test"].public_id not in description
    # The connection is still usable: nothing failed inside the server.
    card = http.get("/v1/bridge/org", params={"public_id": org.keys["test"].public_id})
    assert card.status_code == 200


# --- platform: bodies ------------------------------------------------------------------------


@pytest.fixture
def small_body_api(settings: Settings) -> Iterator[str]:
    settings.api.max_body_bytes = 4096
    with serve_in_thread(create_app(settings)) as server:
        yield server.url


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(
    runtime: Runtime, small_body_api: str
) -> None:
    org = await make_org(runtime)
    search = f"/v1/bridge/catalog/search?public_id={org.keys['test'].public_id}&api_mode=test"
    with httpx.Client(base_url=small_body_api, timeout=30) as client:
        padded = b'{"query": "general"' + b" " * 5000 + b"}"
        declared = client.post(search, content=padded, headers={"content-type": "application/json"})
        assert "4096 bytes" in _envelope_error(declared, 413, "payload_too_large")
        streamed = client.post(
            search, content=_chunks(6000), headers={"content-type": "application/json"}
        )
        assert "transfer-encoding" not in {k.lower() for k in declared.request.headers}
        assert streamed.request.headers["transfer-encoding"] == "chunked"
        _envelope_error(streamed, 413, "payload_too_large")
        fits = client.post(search, json={"query": "general"})
        assert fits.status_code == 200, fits.text


async def test_the_default_limit_refuses_a_large_authenticated_body(
    runtime: Runtime, http: httpx.Client
) -> None:
    org = await make_org(runtime)
    response = http.post(
        "/v1/webhooks/endpoints",
        content=_chunks(2 * MIB),
        headers={"content-type": "application/json"},
        auth=_auth(org),
    )
    _envelope_error(response, 413, "payload_too_large")


async def test_private_routes_check_the_key_before_reading_the_body(
    runtime: Runtime, http: httpx.Client
) -> None:
    org = await make_org(runtime)
    not_json = b"{this is not JSON" + b" " * 10_000
    json_type = {"content-type": "application/json"}
    anonymous = http.post("/v1/webhooks/endpoints", content=not_json, headers=json_type)
    _envelope_error(anonymous, 401, "unauthorized")
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    wrong_key = http.post(
        "/v1/bridge/fhir/ehi-export",
        content=not_json,
        headers=json_type,
        auth=(org.keys["test"].public_id, "private_test_" + "x" * 43),
    )
    _envelope_error(wrong_key, 401, "unauthorized")
    # With a valid key the body is read and parsed as before.
    parsed = http.post(
        "/v1/webhooks/endpoints", content=not_json, headers=json_type, auth=_auth(org)
    )
    _envelope_error(parsed, 422, "invalid_request")
    created = http.post(
        "/v1/webhooks/endpoints", json={"url": "https://hooks.example/ehi"}, auth=_auth(org)
    )
    assert created.status_code == 201, created.text
    listed = http.get("/v1/webhooks/endpoints", auth=_auth(org)).json()["data"]
    assert [e["url"] for e in listed] == ["https://hooks.example/ehi"]


# --- platform: forwarded addresses and the rate limit ----------------------------------------


def _limited(settings: Settings, trusted: list[str]) -> Settings:
    settings.api.public_rate_limit_per_minute = 6
    settings.api.public_rate_limit_burst = 3
    settings.api.trusted_proxies = trusted
    return settings


async def test_forwarded_for_does_not_escape_the_rate_limit_without_trusted_proxies(
    runtime: Runtime, settings: Settings
) -> None:
    org = await make_org(runtime)
    params = {"public_id": org.keys["test"].public_id}
    with (
        serve_in_thread(create_app(_limited(settings, []))) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        statuses = [
            client.get(
                "/v1/bridge/org", params=params, headers={"X-Forwarded-For": f"198.51.100.{i}"}
            ).status_code
            for i in range(6)
        ]
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_a_trusted_proxys_forwarded_address_is_the_client(
    runtime: Runtime, settings: Settings
) -> None:
    org = await make_org(runtime)
    params = {"public_id": org.keys["test"].public_id}

    def get(client: httpx.Client, forwarded_for: str) -> int:
        headers = {"X-Forwarded-For": forwarded_for}
        return client.get("/v1/bridge/org", params=params, headers=headers).status_code

    with (
        serve_in_thread(create_app(_limited(settings, ["127.0.0.1"]))) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        # Each forwarded client has its own budget...
        assert [get(client, f"198.51.100.{i}") for i in range(6)] == [200] * 6
        # ...and one client spends its own: 3, then 429, whatever it writes on the left;
        # the list is read from the right, skipping the trusted proxy's own hop.
        assert [get(client, "203.0.113.9") for _ in range(3)] == [200] * 3
        assert get(client, "192.0.2.1, 203.0.113.9, 127.0.0.1") == 429
        assert get(client, "203.0.113.10") == 200


# --- platform: headers -----------------------------------------------------------------------


def _no_framing(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    policies = response.headers.get_list("content-security-policy")
    assert "frame-ancestors 'none'" in policies
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/v1/bridge/callback?code=c&state=s"])
def test_platform_pages_may_not_be_framed(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    _no_framing(response)


def test_the_callback_page_keeps_its_own_policy(http: httpx.Client) -> None:
    response = http.get("/v1/bridge/callback", params={"code": "c", "state": "s"})
    policies = response.headers.get_list("content-security-policy")
    assert any("default-src 'none'" in p for p in policies)
    assert "cross-origin-opener-policy" not in response.headers  # it posts to window.opener


async def test_json_and_widget_responses_are_not_sniffed(
    runtime: Runtime, http: httpx.Client
) -> None:
    org = await make_org(runtime)
    card = http.get("/v1/bridge/org", params={"public_id": org.keys["test"].public_id})
    assert card.headers["x-content-type-options"] == "nosniff"
    assert card.headers["referrer-policy"] == "no-referrer"
    assert "x-frame-options" not in card.headers
    widget = http.get("/widget/ehi-stitch-element.js")
    assert widget.status_code == 200
    assert widget.headers["x-content-type-options"] == "nosniff"
    # Customer pages on other origins embed it: nothing may block that.
    assert widget.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "cross-origin-embedder-policy" not in widget.headers
    assert "cross-origin-opener-policy" not in widget.headers


def test_an_unexpected_error_carries_the_headers_too(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    with serve_in_thread(app) as server:
        response = httpx.get(f"{server.url}/boom")
    _envelope_error(response, 500, "internal_error")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("trace-42.a_b", True), ("x" * 65, False), ("a b", False), ("<script>", False)],
)
def test_only_short_plain_request_ids_are_echoed(http: httpx.Client, sent: str, kept: bool) -> None:
    response = http.get("/healthz", headers={"x-request-id": sent})
    echoed = response.headers["x-request-id"]
    assert (echoed == sent) is kept
    if not kept:
        assert len(echoed) == 32


# --- tracker ---------------------------------------------------------------------------------

FHIR_TOKEN = "fhir-token-for-guard-tests"


@pytest.fixture
def tracker_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    section = TrackerSettings(
        webhook_secrets=["whsec_" + "A" * 43 + "="],
        fhir_api_token=FHIR_TOKEN,
        storage_dir=tmp_path / "tracker",
    )
    app = build_tracker_app(lambda: open_tracker(section, database_url, tmp_path), section)
    with serve_in_thread(app) as server:
        yield server.url


@pytest.mark.parametrize(
    "url", ["/fhir/Observation?x=%00", "/fhir/Observation?code=%FF", "/fhir/Obs%00ervation"]
)
def test_tracker_fhir_urls_with_control_characters_are_400_outcomes(
    tracker_url: str, url: str
) -> None:
    auth = {"Authorization": f"Bearer {FHIR_TOKEN}"}
    response = httpx.get(tracker_url + url, headers=auth)
    _outcome(response, 400)
    assert response.headers["x-content-type-options"] == "nosniff"


def test_tracker_webhooks_over_the_limit_are_413_unread(tracker_url: str) -> None:
    with httpx.Client(base_url=tracker_url, timeout=30) as client:
        declared = client.post("/webhooks", content=b"{" + b" " * (2 * MIB) + b"}")
        _envelope_error(declared, 413, "payload_too_large")
        streamed = client.post("/webhooks", content=_chunks(2 * MIB))
        _envelope_error(streamed, 413, "payload_too_large")
        events = client.post("/stitch-events?x=%00", json={})
        _envelope_error(events, 400, "invalid_request")


# --- sandbox ---------------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[ThreadedServer]:
    with serve_in_thread(build_sandbox_app()) as server:
        yield server


def test_the_sandbox_login_page_may_not_be_framed(sandbox: ThreadedServer) -> None:
    with httpx.Client(timeout=30) as client:
        started = SmartApp(client, sandbox.url, "harbor").begin()
        response = client.get(started.url)
    assert response.status_code == 200
    assert "password" in response.text
    _no_framing(response)


def test_the_sandbox_refuses_bad_urls_and_big_bodies_in_its_own_shapes(
    sandbox: ThreadedServer,
) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:
        _outcome(client.get("/harbor/fhir/Patient?name=%00"), 400)
        form = {"content-type": "application/x-www-form-urlencoded"}
        token = client.post("/harbor/auth/token", content=_chunks(2 * MIB), headers=form)
        assert token.status_code == 413
        assert token.json()["error"] == "invalid_request"
        assert "bytes" in token.json()["error_description"]
