"""Brand search: typo tolerance, aliases, location filters, stable order and cursor paging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehiconnect.catalog.brands_bundle import parse_brands_bundle
from ehiconnect.catalog.data import BrandData
from ehiconnect.catalog.search import BrandIndex, SearchDoc, paginate, query_fingerprint

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalog"


def _doc(brand: BrandData) -> SearchDoc:
    return SearchDoc(
        brand_id=brand.id,
        name=brand.name,
        aliases=brand.aliases,
        cities=frozenset(str(loc.get("city", "")).lower() for loc in brand.locations),
        states=frozenset(str(loc.get("state", "")).lower() for loc in brand.locations),
    )


@pytest.fixture(scope="module")
def index() -> BrandIndex:
    bundle = json.loads((FIXTURES / "brands-bundle.json").read_text())
    data = parse_brands_bundle(bundle, platform_type="epic")
    return BrandIndex([_doc(b) for b in data.brands])


def test_a_misspelled_name_finds_the_brand_first(index: BrandIndex) -> None:
    assert index.search("Mercy Helth")[0] == "mercy-health"
    assert index.search("bluwater clinc")[0] == "bluewater-clinic"
    assert index.search("pediatrics northgate")[0] == "northgate-peds"  # word order


def test_aliases_find_their_brand(index: BrandIndex) -> None:
    assert index.search("DSMG") == ["desert-springs"]
    assert index.search("Lorain Community Hospital")[0] == "mercy-lorain"
    assert index.search("Bluewater Medical Associates")[0] == "bluewater-clinic"


def test_unrelated_text_finds_nothing(index: BrandIndex) -> None:
    assert index.search("zyxwv qqq") == []


def test_city_and_state_filters(index: BrandIndex) -> None:
    assert index.search("", state="OH") == ["mercy-health", "mercy-lorain"]  # by name
    assert index.search("", state=" oh ") == ["mercy-health", "mercy-lorain"]
    assert index.search("", city="tucson") == ["desert-springs"]
    assert index.search("Mercy", city="Lorain") == ["mercy-lorain"]
    assert index.search("Mercy Health", state="AZ") == []
    assert index.search("", city="Phoenix", state="WI") == []


def test_blank_query_lists_everything_by_name(index: BrandIndex) -> None:
    assert index.search("   ") == [
        "bluewater-clinic", "desert-springs", "mercy-health", "mercy-lorain", "northgate-peds",
        "old-mill",
    ]  # fmt: skip


def test_equal_scores_are_ordered_by_name_then_id() -> None:
    docs = [
        SearchDoc(f"id-{n}", name, (), frozenset(), frozenset())
        for n, name in [(3, "Valley Clinic"), (1, "Valley Clinic"), (2, "Valley Clinic")]
    ]
    shuffled = BrandIndex(list(reversed(docs)))
    assert BrandIndex(docs).search("valley clinic") == ["id-1", "id-2", "id-3"]
    assert shuffled.search("valley clinic") == ["id-1", "id-2", "id-3"]


def _many() -> BrandIndex:
    return BrandIndex(
        [
            SearchDoc(
                f"b{n:03}", f"Community Clinic {n}", (), frozenset({"austin"}), frozenset({"tx"})
            )
            for n in range(57)
        ]
    )


def test_paging_returns_every_result_exactly_once() -> None:
    ids = _many().search("community clinic")
    assert len(ids) == 57
    fingerprint = query_fingerprint("live", "community clinic", None, None)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = paginate(ids, limit=10, search_after=cursor, fingerprint=fingerprint)
        assert page.total == 57
        seen.extend(page.brand_ids)
        pages += 1
        cursor = page.search_after
        if cursor is None:
            break
    assert pages == 6
    assert seen == ids
    assert len(set(seen)) == 57


def test_a_cursor_from_another_query_is_refused() -> None:
    ids = _many().search("community clinic")
    page = paginate(
        ids,
        limit=10,
        search_after=None,
        fingerprint=query_fingerprint("live", "community", None, None),
    )
    assert page.search_after is not None
    other = query_fingerprint("live", "community", "austin", None)
    with pytest.raises(ValueError, match="belongs to a different search"):
        paginate(ids, limit=10, search_after=page.search_after, fingerprint=other)
    with pytest.raises(ValueError, match="not a cursor this API returned"):
        paginate(ids, limit=10, search_after="bm90LWpzb24", fingerprint=other)


def test_a_shared_generic_word_is_not_a_match(index: BrandIndex) -> None:
    assert index.search("Harbor Health") == []
    assert index.search("Sunrise Medical Center") == []
    assert index.search("Mercy Health")[:2] == ["mercy-health", "mercy-lorain"]
    assert "mercy-health" not in index.search("Desert Health")
    # Only generic words: compared whole, so they still find what they name.
    assert index.search("medical group")[0] == "desert-springs"
