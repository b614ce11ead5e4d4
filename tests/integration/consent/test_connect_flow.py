"""Stage 1 over real HTTP: the platform, the sandbox's portal, and the callback."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg

from ehiconnect.catalog.data import BrandData, CatalogData, EndpointData, PortalData
from ehiconnect.catalog.importer import import_catalog
from ehiconnect.clock import FrozenClock
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tokens import open_tokens
from ehiconnect.runtime import Runtime
from tests.integration.consent.conftest import (
    APP_ORIGIN,
    APP_REDIRECT,
    Platform,
    endpoint_ids,
    page_result,
    query_of,
)
from tests.support.portal import sign_in


def _events(database_url: str, event_type: str) -> list[dict[str, object]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT data FROM webhook_events WHERE type = %s ORDER BY created_at", (event_type,)
        ).fetchall()
    return [row[0] for row in rows]


async def test_a_patient_connects_and_the_tokens_are_sealed(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    authorize = platform.authorize("harbor", external_id="user-42", external_state="s-1")
    query = query_of(authorize)
    harbor = endpoint_ids(platform.sandbox.url)
    assert query["aud"] == f"{platform.sandbox.url}/harbor/fhir"
    assert query["code_challenge_method"] == "S256"
    assert query["client_id"] == "ehiconnect-public"
    assert query["redirect_uri"] == f"{platform.api.url}/v1/bridge/callback"
    assert len(query["state"]) >= 43  # 256 bits, base64url
    assert "offline_access" in query["scope"].split()

    callback = sign_in(platform.browser, authorize, username="amy", password="amy-sandbox")
    result = page_result(platform.finish(callback))
    assert result["status"] == "success", result
    assert result["endpoint_id"] == harbor["harbor"]
    assert result["_target_origin"] == APP_ORIGIN  # posted only to the embedding page
    connection_id = result["org_connection_id"]

    read = httpx.get(
        f"{platform.api.url}/v1/bridge/org_connection/{connection_id}", auth=platform.auth()
    ).json()["data"]
    assert read["status"] == "authorized"
    assert read["api_mode"] == "test"
    assert "patient/*.rs" in read["scope"].split()
    # The widget named only the endpoint; the connection still says which health system it is.
    assert read["catalog_endpoint_id"] == harbor["harbor"]
    assert result["brand_id"] == read["catalog_brand_id"] is not None
    assert result["portal_id"] == read["catalog_portal_id"] is not None
    brand = httpx.get(
        f"{platform.api.url}/v1/bridge/catalog",
        params={"public_id": platform.auth()[0], "brand_id": read["catalog_brand_id"]},
    ).json()["data"]
    assert brand["name"] == "Harbor Health (Sandbox)"

    async with runtime.database.transaction() as session:
        row = await session.get(ConnectionTokens, connection_id)
        assert row is not None
        tokens = open_tokens(runtime.cipher, row)
    with psycopg.connect(database_url) as conn:
        dump = str(conn.execute("SELECT * FROM connection_tokens").fetchall())
        flows = str(conn.execute("SELECT * FROM consent_flows").fetchall())
    assert tokens.access_token not in dump
    assert tokens.refresh_token
    assert tokens.refresh_token not in dump
    assert query["state"] not in flows  # only its hash is kept
    # The sealed token is the real one: the health system accepts it.
    patient = httpx.get(
        f"{platform.sandbox.url}/harbor/fhir/metadata",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    )
    assert patient.status_code == 200

    [event] = _events(database_url, "patient.connection_success")
    assert event["org_connection_id"] == connection_id
    assert event["external_id"] == "user-42"
    assert event["external_state"] == "s-1"
    assert event["connection_status"] == "authorized"
    with psycopg.connect(database_url) as conn:
        [(kind, granted, external)] = conn.execute(
            "SELECT event, granted_scope, external_id FROM consent_records"
        ).fetchall()
    assert (kind, external) == ("granted", "user-42")
    assert "patient/*.rs" in granted


def test_a_registered_redirect_uri_receives_the_result(platform: Platform) -> None:
    callback = platform.callback("cedar", "beth", redirect_uri=APP_REDIRECT, external_state="xyz")
    response = platform.finish(callback)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(APP_REDIRECT + "?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["connection_status"] == "authorized"
    assert params["platform_type"] == "epic"
    assert params["external_state"] == "xyz"
    assert len(params["org_connection_id"]) == 36


def test_a_foreign_redirect_uri_is_refused(platform: Platform) -> None:
    response = platform.start(
        platform.connect_url("harbor", redirect_uri="https://evil.example/cb")
    )
    result = page_result(response)
    assert result["status"] == "failed"
    assert result["error"] == "redirect_uri_not_registered"
    assert response.status_code == 403


def test_a_replayed_state_is_refused(platform: Platform) -> None:
    callback = platform.callback("harbor", "tina")
    assert page_result(platform.finish(callback))["status"] == "success"
    replay = page_result(platform.finish(callback))
    assert replay["status"] == "failed"
    assert replay["error"] == "state_reused"


def test_an_unknown_state_is_refused(platform: Platform) -> None:
    result = page_result(
        platform.finish(f"{platform.api.url}/v1/bridge/callback?state=forged&code=x")
    )
    assert (result["status"], result["error"]) == ("failed", "invalid_state")


def test_an_expired_flow_is_refused(platform: Platform, platform_clock: FrozenClock) -> None:
    callback = platform.callback("harbor", "tina")
    platform_clock.advance(21 * 60)
    result = page_result(platform.finish(callback))
    assert (result["status"], result["error"]) == ("failed", "flow_expired")
    assert "start the connection again" in result["error_description"]


def test_a_patient_who_denies_gets_connection_failed(platform: Platform, database_url: str) -> None:
    result = page_result(platform.finish(platform.callback("summit", "tess", decision="deny")))
    assert (result["status"], result["error"]) == ("failed", "access_denied")
    assert "declined" in result["error_description"]
    assert _events(database_url, "patient.connection_success") == []


def test_a_narrowed_scope_is_recorded_as_granted(platform: Platform) -> None:
    kept = {"launch/patient", "openid", "fhirUser"}  # offline_access unticked
    result = platform.connect(
        "harbor", "tina", keep_scopes=kept, keep_types={"Patient", "Observation"}
    )
    assert result["status"] == "success", result
    read = httpx.get(
        f"{platform.api.url}/v1/bridge/org_connection/{result['org_connection_id']}",
        auth=platform.auth(),
    ).json()["data"]
    granted = set(read["scope"].split())
    assert "offline_access" not in granted
    assert "patient/*.rs" not in granted
    assert {"patient/Patient.rs", "patient/Observation.rs"} <= granted


async def test_keys_reach_only_their_mode_of_endpoint(platform: Platform, runtime: Runtime) -> None:
    live = CatalogData(
        brands=[BrandData(id="real-brand", name="Real Hospital", portal_ids=("real-portal",))],
        portals=[PortalData(id="real-portal", name="Real", endpoint_ids=("real-endpoint",))],
        endpoints=[
            EndpointData(
                id="real-endpoint",
                url="https://fhir.real-hospital.example/r4",
                platform_type="epic",
                client_id="registered-client",
            )
        ],
    )
    async with runtime.database.transaction() as session:
        await import_catalog(session, live, source="test-live", sandbox=False)
    test_key_on_live = platform.start(
        platform.connect_url("harbor").replace(
            endpoint_ids(platform.sandbox.url)["harbor"], "real-endpoint"
        )
    )
    result = page_result(test_key_on_live)
    assert (result["error"], test_key_on_live.status_code) == ("api_mode_mismatch", 403)

    live_key_on_sandbox = platform.start(
        str(
            httpx.URL(
                f"{platform.api.url}/v1/bridge/connect",
                params={
                    "public_id": platform.org.keys["live"].public_id,
                    "endpoint_id": endpoint_ids(platform.sandbox.url)["harbor"],
                },
            )
        )
    )
    assert page_result(live_key_on_sandbox)["error"] == "api_mode_mismatch"


def test_reconnect_keeps_the_same_connection_id(platform: Platform, database_url: str) -> None:
    first = platform.connect("harbor", "amy")
    connection_id = first["org_connection_id"]
    url = str(
        httpx.URL(
            f"{platform.api.url}/v1/bridge/reconnect",
            params={
                "public_id": platform.org.keys["test"].public_id,
                "reconnect_org_connection_id": connection_id,
            },
        )
    )
    response = platform.start(url)
    assert response.status_code == 302
    callback = sign_in(
        platform.browser, response.headers["location"], username="amy", password="amy-sandbox"
    )
    again = page_result(platform.finish(callback))
    assert again["status"] == "success"
    assert again["org_connection_id"] == connection_id
    with psycopg.connect(database_url) as conn:
        kinds = [r[0] for r in conn.execute("SELECT event FROM consent_records ORDER BY id")]
        count = conn.execute("SELECT count(*) FROM org_connections").fetchone()
    assert kinds == ["granted", "reconnected"]
    assert count == (1,)


async def test_only_the_organization_and_mode_of_a_connection_can_reconnect_it(
    platform: Platform, runtime: Runtime
) -> None:
    from tests.integration.conftest import make_org

    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    other = await make_org(runtime, "Other Health")

    def reconnect_with(public_id: str) -> httpx.Response:
        return platform.start(
            str(
                httpx.URL(
                    f"{platform.api.url}/v1/bridge/reconnect",
                    params={"public_id": public_id, "reconnect_org_connection_id": connection_id},
                )
            )
        )

    another_org = reconnect_with(other.keys["test"].public_id)
    assert (another_org.status_code, page_result(another_org)["error"]) == (404, "not_found")
    other_mode = reconnect_with(platform.org.keys["live"].public_id)
    assert (other_mode.status_code, page_result(other_mode)["error"]) == (
        403,
        "api_mode_mismatch",
    )
    assert "test key" in page_result(other_mode)["error_description"]
