"""Importing catalogs into a real database, and searching them over the platform's HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from ehiconnect.catalog.brands_bundle import parse_brands_bundle
from ehiconnect.catalog.importer import import_catalog
from ehiconnect.catalog.models import CatalogBrand, CatalogEndpoint, CatalogPortal
from ehiconnect.catalog.plain import parse_plain_catalog
from ehiconnect.ids import ApiMode
from ehiconnect.runtime import Runtime
from tests.integration.catalog.conftest import BUNDLE, PLAIN, load_fixture
from tests.integration.consent.conftest import APP_ORIGIN, Platform

ZERO = {"brands": 0, "portals": 0, "endpoints": 0}


async def _import_bundle(runtime: Runtime, bundle: dict[str, Any]) -> dict[str, Any]:
    data = parse_brands_bundle(bundle, platform_type="epic")
    async with runtime.database.transaction() as session:
        report = await import_catalog(session, data, source="example-brands", sandbox=False)
    return report.as_json()


async def _import_plain(runtime: Runtime) -> dict[str, Any]:
    async with runtime.database.transaction() as session:
        report = await import_catalog(
            session, parse_plain_catalog(load_fixture(PLAIN)), source="plain", sandbox=False
        )
    return report.as_json()


def _search(platform: Platform, mode: ApiMode, **body: Any) -> httpx.Response:
    public_id = platform.org.keys[mode].public_id
    return httpx.post(
        f"{platform.api.url}/v1/bridge/catalog/search",
        params={"public_id": public_id},
        json=body,
        headers={"Origin": APP_ORIGIN},
    )


def _total(data: dict[str, Any]) -> int:
    return int(data["hits"]["total"]["value"])


def _results(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The brands of a search answer (Elasticsearch's shape: each hit's `_source`)."""
    return [hit["_source"] for hit in data["hits"]["hits"]]


def _brand(platform: Platform, mode: ApiMode, brand_id: str) -> httpx.Response:
    return httpx.get(
        f"{platform.api.url}/v1/bridge/catalog",
        params={"public_id": platform.org.keys[mode].public_id, "brand_id": brand_id},
    )


async def test_importing_the_same_bundle_twice_changes_nothing(runtime: Runtime) -> None:
    first = await _import_bundle(runtime, load_fixture(BUNDLE))
    assert first == {
        "added": {"brands": 6, "portals": 6, "endpoints": 6},
        "changed": ZERO,
        "removed": ZERO,
    }
    second = await _import_bundle(runtime, load_fixture(BUNDLE))
    assert second == {"added": ZERO, "changed": ZERO, "removed": ZERO}
    async with runtime.database.transaction() as session:
        old_mill = await session.get(CatalogEndpoint, "old-mill-dstu2")
        lorain = await session.get(CatalogBrand, "mercy-lorain")
    assert old_mill is not None
    assert old_mill.status == "suspended"
    assert old_mill.fhir_version == "1.0.2"
    assert lorain is not None
    assert len(lorain.portal_ids) == 2  # the parent's portals


async def test_a_changed_bundle_reports_changes_and_deprecates_what_left(
    platform: Platform, runtime: Runtime
) -> None:
    await _import_bundle(runtime, load_fixture(BUNDLE))
    assert _total(_search(platform, "live", query="Desert Springs").json()["data"]) == 1

    changed = load_fixture(BUNDLE)
    gone = {"desert-springs", "desert-r4"}
    changed["entry"] = [e for e in changed["entry"] if e["resource"]["id"] not in gone]
    bluewater = next(
        e["resource"] for e in changed["entry"] if e["resource"]["id"] == "bluewater-clinic"
    )
    bluewater["name"] = "Bluewater Clinic & Hospital"
    report = await _import_bundle(runtime, changed)
    assert report == {
        "added": ZERO,
        "changed": {"brands": 1, "portals": 0, "endpoints": 0},
        "removed": {"brands": 1, "portals": 1, "endpoints": 1},
    }
    async with runtime.database.transaction() as session:
        brand = await session.get(CatalogBrand, "desert-springs")
        endpoint = await session.get(CatalogEndpoint, "desert-r4")
        assert brand is not None
        assert endpoint is not None
        portal = await session.get(CatalogPortal, brand.portal_ids[0])
    assert brand.status == "deprecated"
    assert endpoint.status == "suspended"
    assert portal is not None
    assert portal.status == "deprecated"

    # Gone from search, but ids stored before keep resolving.
    assert _total(_search(platform, "live", query="Desert Springs").json()["data"]) == 0
    kept = _brand(platform, "live", "desert-springs")
    assert kept.status_code == 200, kept.text
    assert kept.json()["data"]["name"] == "Desert Springs Medical Group"
    renamed = _results(_search(platform, "live", query="Bluewater").json()["data"])
    assert [b["name"] for b in renamed] == ["Bluewater Clinic & Hospital"]
    # And the same file again is a no-op.
    assert await _import_bundle(runtime, changed) == {
        "added": ZERO,
        "changed": ZERO,
        "removed": ZERO,
    }


async def test_merged_brand_ids_resolve_to_the_surviving_brand(
    platform: Platform, runtime: Runtime
) -> None:
    report = await _import_plain(runtime)
    assert report["added"] == {"brands": 5, "portals": 3, "endpoints": 4}  # 3 + 2 merged ids
    for old_id in ("riverbend-regional-old", "rbh-east"):
        response = _brand(platform, "live", old_id)
        assert response.status_code == 200, response.text
        brand = response.json()["data"]
        assert brand["id"] == "riverbend-health"
        assert [p["id"] for p in brand["portals"]] == ["riverbend-mychart"]
        assert brand["portals"][0]["endpoints"][0]["id"] == "riverbend-r4"
    # Only the surviving brand is searchable.
    found = _results(_search(platform, "live", query="Riverbend").json()["data"])
    assert [b["id"] for b in found] == ["riverbend-health"]
    # A test key cannot read a live brand, merged or not.
    refused = _brand(platform, "test", "rbh-east")
    assert refused.status_code == 403
    assert refused.json()["error"] == "api_mode_mismatch"


async def test_search_over_http_keeps_modes_apart_and_pages(
    platform: Platform, runtime: Runtime
) -> None:
    await _import_bundle(runtime, load_fixture(BUNDLE))
    await _import_plain(runtime)

    test_mode = _search(platform, "test", query="").json()["data"]
    assert _total(test_mode) == 3
    assert all(b["name"].endswith("(Sandbox)") for b in _results(test_mode))
    mercy_in_test = _results(_search(platform, "test", query="Mercy Health").json()["data"])
    assert "mercy-health" not in {b["id"] for b in mercy_in_test}

    live = _search(platform, "live", query="Mercy Helth").json()["data"]
    assert _results(live)[0]["id"] == "mercy-health"
    assert not any(b["name"].endswith("(Sandbox)") for b in _results(live))
    harbor_in_live = _search(platform, "live", query="Harbor Health (Sandbox)").json()["data"]
    assert not any(b["name"].endswith("(Sandbox)") for b in _results(harbor_in_live))
    in_ohio = _search(platform, "live", query="", state="OH").json()["data"]
    assert [b["id"] for b in _results(in_ohio)] == ["mercy-health", "mercy-lorain"]

    everything = _search(platform, "live", query="", limit=100).json()["data"]
    assert _total(everything) == 9  # 6 from the bundle, 3 from the plain file
    seen: list[str] = []
    after = None
    while True:
        body: dict[str, Any] = {"query": "", "limit": 4}
        if after:
            body["searchAfter"] = after
        page = _search(platform, "live", **body).json()["data"]
        assert _total(page) == 9
        if not page["hits"]["hits"]:
            break
        seen.extend(b["id"] for b in _results(page))
        after = page["hits"]["hits"][-1]["sort"]
    assert seen == [b["id"] for b in _results(everything)]
    assert len(set(seen)) == 9

    malformed = _search(platform, "live", query="clinic", searchAfter=["not", "a", "key"])
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "invalid_request"
    assert "sort` array of the last hit" in malformed.json()["error_description"]


async def test_search_answers_browsers_only_from_registered_origins(platform: Platform) -> None:
    url = f"{platform.api.url}/v1/bridge/catalog/search"
    params = {"public_id": platform.org.keys["live"].public_id}
    allowed = httpx.post(url, params=params, json={"query": ""}, headers={"Origin": APP_ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN

    foreign = httpx.post(
        url, params=params, json={"query": ""}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "origin_not_allowed"
    assert foreign.json()["success"] is False
    assert "hits" not in foreign.text  # no catalog data reaches a foreign page

    preflight = httpx.options(
        url,
        params=params,
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    refused = httpx.options(url, params=params, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403


async def test_reimport_keeps_discovered_oauth_endpoints_and_operator_settings(
    runtime: Runtime,
) -> None:
    """A nightly re-import must not break token refresh of existing connections."""
    await _import_bundle(runtime, load_fixture(BUNDLE))
    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, "mercy-r4")
        assert endpoint is not None
        # What `catalog configure` and the first consent flow's discovery store.
        endpoint.client_id = "mercy-client"
        endpoint.authorization_endpoint = "https://fhir.mercyhealth.example/oauth2/authorize"
        endpoint.token_endpoint = "https://fhir.mercyhealth.example/oauth2/token"
        endpoint.revoke_endpoint = "https://fhir.mercyhealth.example/oauth2/revoke"
    report = await _import_bundle(runtime, load_fixture(BUNDLE))
    assert report == {"added": ZERO, "changed": ZERO, "removed": ZERO}
    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, "mercy-r4")
        assert endpoint is not None
    assert endpoint.client_id == "mercy-client"
    assert endpoint.token_endpoint == "https://fhir.mercyhealth.example/oauth2/token"
    assert endpoint.revoke_endpoint == "https://fhir.mercyhealth.example/oauth2/revoke"
