"""`GET /v1/bridge/catalog/export`: a private-key caller gets links, valid 60 minutes, to its
mode's catalog as JSON arrays (#16 item 3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from ehiconnect.catalog.brands_bundle import parse_brands_bundle
from ehiconnect.catalog.importer import import_catalog
from ehiconnect.clock import FrozenClock
from ehiconnect.ids import ApiMode
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.testing.servers import ThreadedServer
from tests.integration.catalog.conftest import BUNDLE, load_fixture
from tests.integration.consent import conftest as consent_fixtures

# The platform with the sandbox health systems in its test-mode catalog, on a frozen clock.
sandbox_app = consent_fixtures.sandbox_app
sandbox = consent_fixtures.sandbox
platform_clock = consent_fixtures.platform_clock
settings = consent_fixtures.settings
api = consent_fixtures.api
org = consent_fixtures.org

FILES = {"brands.json", "portals.json", "endpoints.json"}


def _links(api: ThreadedServer, org: CreatedOrg, mode: ApiMode) -> dict[str, str]:
    key = org.keys[mode].private_key
    response = httpx.get(
        f"{api.url}/v1/bridge/catalog/export",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    links: dict[str, str] = response.json()["data"]
    return links


def _download(url: str) -> list[dict[str, Any]]:
    response = httpx.get(url, timeout=10)  # no key: the link is the credential
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    data: list[dict[str, Any]] = response.json()
    return data


def _ids(database_url: str, table: str, sandbox: bool) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT id FROM {table} WHERE sandbox = %s AND merged_into IS NULL",  # noqa: S608
            (sandbox,),
        ).fetchall()
    return {row[0] for row in rows}


async def test_each_mode_gets_its_own_catalog_as_json_arrays(
    api: ThreadedServer, org: CreatedOrg, runtime: Runtime, database_url: str
) -> None:
    data = parse_brands_bundle(load_fixture(BUNDLE), platform_type="epic")
    async with runtime.database.transaction() as session:
        await import_catalog(session, data, source="example-brands", sandbox=False)

    for mode, sandbox in (("test", True), ("live", False)):
        links = _links(api, org, mode)  # type: ignore[arg-type]
        assert set(links) == FILES
        assert all(urlsplit(url).path.endswith(f"/{name}") for name, url in links.items())
        brands = _download(links["brands.json"])
        portals = _download(links["portals.json"])
        endpoints = _download(links["endpoints.json"])
        assert {b["id"] for b in brands} == _ids(database_url, "catalog_brands", sandbox)
        assert {p["id"] for p in portals} == _ids(database_url, "catalog_portals", sandbox)
        assert {e["id"] for e in endpoints} == _ids(database_url, "catalog_endpoints", sandbox)
        assert min(len(brands), len(portals), len(endpoints)) > 0
        # The files reference each other, and carry no credential of an endpoint.
        portal_ids = {p["id"] for p in portals}
        assert {pid for b in brands for pid in b["portal_ids"]} <= portal_ids
        for endpoint in endpoints:
            assert endpoint["url"].startswith("http")
            assert not {"client_id", "client_secret", "client_secret_ct", "source"} & set(endpoint)


async def test_links_cannot_be_forged_reused_for_another_file_or_used_after_an_hour(
    api: ThreadedServer, org: CreatedOrg, platform_clock: FrozenClock
) -> None:
    links = _links(api, org, "test")
    brands_url = links["brands.json"]

    tampered = brands_url[:-3] + ("AAA" if not brands_url.endswith("AAA") else "BBB")
    forged = httpx.get(tampered, timeout=10)
    assert forged.status_code == 404
    assert forged.json()["success"] is False
    assert "not valid" in forged.json()["error_description"]

    other_file = httpx.get(brands_url.replace("/brands.json?", "/endpoints.json?"), timeout=10)
    assert other_file.status_code == 404
    assert "another file" in other_file.json()["error_description"]

    platform_clock.advance(59 * 60)
    assert httpx.get(brands_url, timeout=10).status_code == 200
    platform_clock.advance(61)
    expired = httpx.get(brands_url, timeout=10)
    assert expired.status_code == 410
    assert expired.json()["error"] == "gone"


async def test_the_links_need_a_private_key(api: ThreadedServer, org: CreatedOrg) -> None:
    anonymous = httpx.get(f"{api.url}/v1/bridge/catalog/export", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["success"] is False
    public_only = httpx.get(
        f"{api.url}/v1/bridge/catalog/export",
        headers={"Authorization": f"Bearer {org.keys['test'].public_id}"},
        timeout=10,
    )
    assert public_only.status_code == 401
