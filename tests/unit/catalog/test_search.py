"""Brand search: typo tolerance, aliases, location filters, stable order and search_after paging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehiconnect.catalog.brands_bundle import parse_brands_bundle
from ehiconnect.catalog.data import BrandData
from ehiconnect.catalog.hits import search_response
from ehiconnect.catalog.search import BrandIndex, SearchDoc, page_after, parse_search_after

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
    index = _many()
    ranked = index.rank("community clinic")
    assert len(ranked) == 57
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = page_after(ranked, limit=10, search_after=after)
        assert page.total == 57
        if not page.hits:
            break
        seen.extend(page.brand_ids)
        pages += 1
        # What a client sends back: the last hit's sort array, after a JSON round trip.
        after = parse_search_after(json.loads(json.dumps(list(page.hits[-1].sort))))
    assert pages == 6
    assert seen == index.search("community clinic")
    assert len(set(seen)) == 57


def test_search_after_is_a_position_not_a_cursor() -> None:
    """A key stays valid when the catalog changes: nothing is repeated or skipped around it."""
    docs = [SearchDoc(f"b{n}", f"Clinic {n}", (), frozenset(), frozenset()) for n in range(6)]
    first = page_after(BrandIndex(docs).rank(""), limit=3, search_after=None)
    assert first.brand_ids == ["b0", "b1", "b2"]
    grown = BrandIndex([SearchDoc("a", "Clinic 0a", (), frozenset(), frozenset()), *docs])
    second = page_after(grown.rank(""), limit=10, search_after=first.hits[-1].sort)
    assert second.brand_ids == ["b3", "b4", "b5"]


def test_search_after_accepts_the_sort_array_or_its_values_joined() -> None:
    assert parse_search_after([87.5, "mercy, health", "m-1"]) == (87.5, "mercy, health", "m-1")
    assert parse_search_after("87.5,mercy, health,m-1") == (87.5, "mercy, health", "m-1")
    assert parse_search_after(None) is None
    for bad in (["x", "n", "i"], [1.0, "n"], "no-commas", {"o": 1}, [True, "n", "i"]):
        with pytest.raises(ValueError, match="sort` array of the last hit"):
            parse_search_after(bad)


def test_the_answer_has_elasticsearchs_shape() -> None:
    docs = [
        SearchDoc("e1", "Epic Clinic", (), frozenset(), frozenset(), ("epic",)),
        SearchDoc("e2", "Epic Two", (), frozenset(), frozenset(), ("epic", "cerner")),
        SearchDoc("c1", "Cerner Place", (), frozenset(), frozenset(), ("cerner",)),
        SearchDoc("n1", "No Endpoints", (), frozenset(), frozenset()),
    ]
    page = page_after(BrandIndex(docs).rank(""), limit=2, search_after=None)
    views = {
        d.brand_id: {"id": d.brand_id, "name": d.name, "logo": None, "portals": []} for d in docs
    }
    answer = search_response(page, views, took_ms=3)
    assert answer["hits"]["total"] == {"value": 4, "relation": "eq"}
    assert answer["hits"]["max_score"] == 1.0
    hits = answer["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["c1", "e1"]
    assert hits[0]["sort"] == [1.0, "cerner place", "c1"]
    assert hits[0]["_score"] == 1.0
    assert hits[0]["_source"]["sort_name"] == "cerner place"
    assert hits[0]["_source"]["hidden"] is False
    assert hits[0]["_source"]["platform_type"] == "cerner"
    assert hits[0]["_source"]["name"] == "Cerner Place"
    buckets = answer["aggregations"]["by_platform_type"]["buckets"]
    assert buckets == [{"key": "cerner", "doc_count": 2}, {"key": "epic", "doc_count": 2}]


def test_a_shared_generic_word_is_not_a_match(index: BrandIndex) -> None:
    assert index.search("Harbor Health") == []
    assert index.search("Sunrise Medical Center") == []
    assert index.search("Mercy Health")[:2] == ["mercy-health", "mercy-lorain"]
    assert "mercy-health" not in index.search("Desert Health")
    # Only generic words: compared whole, so they still find what they name.
    assert index.search("medical group")[0] == "desert-springs"
