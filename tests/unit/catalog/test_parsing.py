"""Reading catalogs: SMART User-access Brands Bundles and the plain JSON format."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ehiconnect.catalog.brands_bundle import parse_brands_bundle
from ehiconnect.catalog.data import CatalogData
from ehiconnect.catalog.plain import parse_plain_catalog
from ehiconnect.catalog.reading import CatalogFormat, CatalogInputError, parse_catalog

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalog"


def _bundle() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / "brands-bundle.json").read_text())
    return document


def _plain() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / "plain-catalog.json").read_text())
    return document


def _brand(data: CatalogData, brand_id: str) -> Any:
    return next(b for b in data.brands if b.id == brand_id)


def test_brands_bundle_gives_brands_portals_and_endpoints() -> None:
    data = parse_brands_bundle(_bundle(), platform_type="epic")
    assert {b.id for b in data.brands} == {
        "mercy-health", "mercy-lorain", "bluewater-clinic", "desert-springs", "old-mill",
        "northgate-peds",
    }  # fmt: skip
    mercy = _brand(data, "mercy-health")
    assert mercy.name == "Mercy Health"
    assert mercy.aliases == ("Mercy Health System", "MHS Ohio")
    assert mercy.brand_website == "https://www.mercyhealth.example"
    assert mercy.logo == "https://www.mercyhealth.example/logo.svg"
    assert [(loc["city"], loc["state"]) for loc in mercy.locations] == [
        ("Cincinnati", "OH"),
        ("Toledo", "OH"),
    ]
    portals = {p.id: p for p in data.portals}
    assert [portals[pid].name for pid in mercy.portal_ids] == ["MyMercy", "Mercy Kids"]
    assert [portals[pid].endpoint_ids for pid in mercy.portal_ids] == [
        ("mercy-r4",),
        ("mercy-kids-r4",),
    ]
    endpoint = next(e for e in data.endpoints if e.id == "mercy-r4")
    assert endpoint.url == "https://fhir.mercyhealth.example/api/FHIR/R4"  # trailing / dropped
    assert endpoint.platform_type == "epic"
    assert endpoint.fhir_version == "4.0.1"
    assert endpoint.status == "active"


def test_an_affiliate_gets_its_parents_portals() -> None:
    data = parse_brands_bundle(_bundle(), platform_type="epic")
    lorain = _brand(data, "mercy-lorain")
    assert lorain.portal_ids == _brand(data, "mercy-health").portal_ids
    assert [loc["city"] for loc in lorain.locations] == [
        "Lorain"
    ]  # its own address, not the parent's


def test_inactive_endpoint_is_suspended_and_keeps_its_fhir_version() -> None:
    data = parse_brands_bundle(_bundle(), platform_type="smart")
    old_mill = next(e for e in data.endpoints if e.id == "old-mill-dstu2")
    assert old_mill.status == "suspended"
    assert old_mill.fhir_version == "1.0.2"


def test_endpoints_on_the_organization_are_used_when_the_portal_names_none() -> None:
    data = parse_brands_bundle(_bundle(), platform_type="smart")
    [portal_id] = _brand(data, "northgate-peds").portal_ids
    portal = next(p for p in data.portals if p.id == portal_id)
    assert portal.endpoint_ids == ("northgate-r4",)
    assert portal.name == "Northgate FollowMyHealth"


def test_portal_ids_are_stable_across_runs_and_distinct() -> None:
    first = parse_brands_bundle(_bundle(), platform_type="epic")
    second = parse_brands_bundle(json.loads(json.dumps(_bundle())), platform_type="epic")
    assert [p.id for p in first.portals] == [p.id for p in second.portals]
    assert len({p.id for p in first.portals}) == len(first.portals)
    # A change elsewhere in the bundle leaves other portals' ids alone.
    changed = _bundle()
    changed["entry"] = [e for e in changed["entry"] if e["resource"]["id"] != "desert-springs"]
    third = parse_brands_bundle(changed, platform_type="epic")
    assert _brand(third, "mercy-health").portal_ids == _brand(first, "mercy-health").portal_ids


def test_a_brand_whose_endpoints_are_all_missing_is_left_out() -> None:
    bundle = _bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != "bluewater-r4"]
    data = parse_brands_bundle(bundle, platform_type="epic")
    assert "bluewater-clinic" not in {b.id for b in data.brands}


def test_an_endpoint_without_an_http_address_is_refused() -> None:
    bundle = _bundle()
    endpoint = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "desert-r4")
    endpoint["address"] = "ftp://fhir.desertsprings.example/r4"
    with pytest.raises(ValueError, match=r"Endpoint/desert-r4 has no http\(s\) address"):
        parse_brands_bundle(bundle, platform_type="epic")


def test_plain_catalog_reads_merged_ids_and_connection_settings() -> None:
    data = parse_plain_catalog(_plain())
    riverbend = _brand(data, "riverbend-health")
    assert riverbend.merged_ids == ("riverbend-regional-old", "rbh-east")
    endpoints = {e.id: e for e in data.endpoints}
    assert endpoints["riverbend-r4"].url == "https://fhir.riverbend.example/api/FHIR/R4"
    assert endpoints["riverbend-r4"].client_id == "riverbend-ehiconnect"
    assert endpoints["riverbend-r4"].platform_type == "epic"
    assert endpoints["lakeside-legacy"].status == "suspended"
    assert endpoints["prairie-r4"].client_id is None  # unset: the operator's value is kept


def test_inconsistent_plain_catalog_is_refused_with_what_is_missing() -> None:
    document = _plain()
    document["portals"] = [p for p in document["portals"] if p["id"] != "lakeside-portal"]
    with pytest.raises(
        ValueError, match="brand lakeside-clinic names missing portal lakeside-portal"
    ):
        parse_plain_catalog(document)
    dangling = _plain()
    dangling["endpoints"] = [e for e in dangling["endpoints"] if e["id"] != "prairie-r4"]
    with pytest.raises(ValueError, match="portal prairie-portal names missing endpoint prairie-r4"):
        parse_plain_catalog(dangling)


def test_plain_catalog_entry_without_a_required_field_is_refused() -> None:
    document = _plain()
    del document["endpoints"][0]["platform_type"]
    with pytest.raises(ValueError, match="lacks the required field 'platform_type'"):
        parse_plain_catalog(document)


def test_format_is_detected_from_the_resource_type() -> None:
    bundle_bytes = (FIXTURES / "brands-bundle.json").read_bytes()
    plain_bytes = (FIXTURES / "plain-catalog.json").read_bytes()
    data, used = parse_catalog(bundle_bytes, catalog_format=CatalogFormat.auto, platform_type=None)
    assert used is CatalogFormat.brands_bundle
    assert {e.platform_type for e in data.endpoints} == {"smart"}
    data, used = parse_catalog(plain_bytes, catalog_format=CatalogFormat.auto, platform_type=None)
    assert used is CatalogFormat.plain
    assert "riverbend-health" in {b.id for b in data.brands}


@pytest.mark.parametrize(
    ("raw", "catalog_format", "platform_type", "message"),
    [
        (b"{not json", CatalogFormat.auto, None, "not valid JSON"),
        (b"[]", CatalogFormat.auto, None, "must be a JSON object"),
        (b'{"hello": 1}', CatalogFormat.auto, None, "neither a Brands Bundle"),
        (b'{"brands": []}', CatalogFormat.plain, "epic", "--platform-type applies to Brands"),
        (b'{"brands": []}', CatalogFormat.brands_bundle, None, "must be a FHIR Bundle"),
    ],
)
def test_unreadable_catalogs_are_refused_clearly(
    raw: bytes, catalog_format: CatalogFormat, platform_type: str | None, message: str
) -> None:
    with pytest.raises(CatalogInputError, match=message):
        parse_catalog(raw, catalog_format=catalog_format, platform_type=platform_type)


def test_a_plain_catalog_pointing_at_a_missing_portal_is_refused_by_the_cli_parser() -> None:
    document = copy.deepcopy(_plain())
    document["brands"][0]["portal_ids"].append("nowhere")
    with pytest.raises(CatalogInputError, match="riverbend-health names missing portal nowhere"):
        parse_catalog(
            json.dumps(document).encode(), catalog_format=CatalogFormat.auto, platform_type=None
        )
