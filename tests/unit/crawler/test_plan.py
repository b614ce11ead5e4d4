"""`plan_crawl` turns capabilities, scopes and vendor quirks into the requests to make."""

from __future__ import annotations

from typing import Any

import pytest

from ehiconnect.crawler.plan import plan_crawl
from ehiconnect.crawler.quirks import EPIC_LIKE, GENERIC, VendorQuirks
from ehiconnect.errors import FatalError
from ehiconnect.fhir.capability import CapabilitySummary, parse_capability_statement
from ehiconnect.fhir.resource_types import SearchSpec

ALL = "launch/patient openid patient/*.read"


def _capabilities(
    types: dict[str, list[str]] | None = None, *, everything: bool = False
) -> CapabilitySummary:
    resources: list[dict[str, Any]] = [
        {"type": name, "searchParam": [{"name": p} for p in params]}
        for name, params in (types or {}).items()
    ]
    if everything:
        resources.append({"type": "Patient", "operation": [{"name": "everything"}]})
    return parse_capability_statement(
        {"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": resources}]}
    )


SPECS = (
    SearchSpec("Condition"),
    SearchSpec("Observation"),
    SearchSpec("AdverseEvent", patient_param="subject", alternative_param=None),
)


def test_everything_is_used_when_advertised_and_trusted() -> None:
    plan = plan_crawl(_capabilities(everything=True), ALL, GENERIC, patient_id="p1", page_size=50)
    assert plan.patient_read_url == "Patient/p1"
    assert plan.everything_url == "Patient/p1/$everything?_count=50"
    assert plan.searches == ()
    assert plan.uses_everything


def test_everything_is_not_used_for_a_vendor_that_truncates_it() -> None:
    capabilities = _capabilities({"Condition": ["patient"]}, everything=True)
    plan = plan_crawl(capabilities, ALL, EPIC_LIKE, patient_id="p1")
    assert not plan.uses_everything
    assert [s.resource_type for s in plan.searches] == ["Condition"] * 3  # by category


@pytest.mark.parametrize(
    ("scopes", "declared", "expected_urls", "skipped"),
    [
        (
            ALL,
            {},  # a statement listing no resources rules nothing out
            [
                "Condition?patient=p1&_count=100",
                "Observation?patient=p1&_count=100",
                "AdverseEvent?subject=p1&_count=100",
            ],
            {},
        ),
        (
            "patient/Patient.read patient/Observation.read",
            {},
            ["Observation?patient=p1&_count=100"],
            {
                "Condition": "not allowed by the granted scopes",
                "AdverseEvent": "not allowed by the granted scopes",
            },
        ),
        (
            "patient/Patient.rs patient/Observation.rs patient/Condition.r",
            {},
            ["Observation?patient=p1&_count=100"],  # `r` alone allows no search
            {
                "Condition": "not allowed by the granted scopes",
                "AdverseEvent": "not allowed by the granted scopes",
            },
        ),
        (
            ALL,
            {"Condition": ["patient"], "Observation": ["subject", "code"], "Patient": []},
            ["Condition?patient=p1&_count=100", "Observation?subject=p1&_count=100"],
            {"AdverseEvent": "not listed in the server's CapabilityStatement"},
        ),
        (
            "patient/Patient.rs patient/Observation.rs?category=laboratory "
            "patient/Observation.rs?category=vital-signs",
            {},
            [
                "Observation?patient=p1&category=laboratory&_count=100",
                "Observation?patient=p1&category=vital-signs&_count=100",
            ],
            {
                "Condition": "not allowed by the granted scopes",
                "AdverseEvent": "not allowed by the granted scopes",
            },
        ),
    ],
)
def test_per_type_searches(
    scopes: str, declared: dict[str, list[str]], expected_urls: list[str], skipped: dict[str, str]
) -> None:
    quirks = VendorQuirks(name="test", max_count=100)
    plan = plan_crawl(
        _capabilities(declared), scopes, quirks, patient_id="p1", page_size=500, search_specs=SPECS
    )
    assert [s.url for s in plan.searches] == expected_urls
    assert {s.resource_type: s.reason for s in plan.skipped} == skipped
    assert plan.everything_url is None


def test_vendor_category_fanout_gives_one_search_per_category() -> None:
    plan = plan_crawl(_capabilities(), ALL, EPIC_LIKE, patient_id="p1", search_specs=SPECS)
    observation_urls = [s.url for s in plan.searches if s.resource_type == "Observation"]
    _, categories = EPIC_LIKE.search_fanout["Observation"]
    assert observation_urls == [
        f"Observation?patient=p1&category={c}&_count={EPIC_LIKE.max_count}" for c in categories
    ]


def test_patient_ids_and_category_tokens_are_url_encoded() -> None:
    quirks = VendorQuirks(
        name="t",
        search_fanout={
            "Observation": (
                "category",
                ("http://terminology.hl7.org/CodeSystem/observation-category|laboratory",),
            )
        },
    )
    plan = plan_crawl(
        _capabilities(), ALL, quirks, patient_id="a b&c", search_specs=(SearchSpec("Observation"),)
    )
    assert plan.patient_read_url == "Patient/a%20b%26c"
    assert plan.searches[0].url == (
        "Observation?patient=a+b%26c&category=http://terminology.hl7.org/CodeSystem/"
        "observation-category|laboratory&_count=100"
    )


def test_without_patient_read_the_export_fails_with_scope_patient_missing() -> None:
    with pytest.raises(FatalError) as caught:
        plan_crawl(_capabilities(), "patient/Observation.read", GENERIC, patient_id="p1")
    assert caught.value.failure_reason == "scope_patient_missing"


def test_hydration_is_limited_to_readable_types() -> None:
    plan = plan_crawl(
        _capabilities(),
        "patient/Patient.read patient/Practitioner.read patient/Observation.rs",
        GENERIC,
        patient_id="p1",
    )
    assert plan.hydrate_types == {"Practitioner", "Observation"}


def test_skip_types_and_param_overrides_from_quirks() -> None:
    quirks = VendorQuirks(
        name="t",
        skip_types=frozenset({"Condition"}),
        patient_param_overrides={"Observation": "subject"},
    )
    plan = plan_crawl(_capabilities(), ALL, quirks, patient_id="p1", search_specs=SPECS)
    assert [s.url.split("&")[0] for s in plan.searches] == [
        "Observation?subject=p1",
        "AdverseEvent?subject=p1",
    ]
    assert plan.skipped[0].resource_type == "Condition"


def test_page_size_is_capped_by_the_vendor() -> None:
    plan = plan_crawl(
        _capabilities(),
        ALL,
        VendorQuirks(name="t", max_count=20),
        patient_id="p",
        page_size=1000,
        search_specs=SPECS[:1],
    )
    assert plan.searches[0].url.endswith("_count=20")


def test_a_path_as_patient_id_is_refused() -> None:
    with pytest.raises(ValueError, match="bare FHIR id"):
        plan_crawl(_capabilities(), ALL, GENERIC, patient_id="Patient/p1")


def test_types_declared_without_search_are_not_searched() -> None:
    capabilities = parse_capability_statement(
        {
            "resourceType": "CapabilityStatement",
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {"type": "Condition", "interaction": [{"code": "read"}]},
                        {"type": "Observation", "interaction": [{"code": "search-type"}]},
                    ],
                }
            ],
        }
    )
    plan = plan_crawl(capabilities, ALL, GENERIC, patient_id="p", search_specs=SPECS[:2])
    assert plan.searched_types == {"Observation"}
    assert plan.skipped[0].resource_type == "Condition"
    assert "does not allow searching" in plan.skipped[0].reason


def test_without_a_page_size_the_plan_asks_for_the_largest_page_the_vendor_accepts() -> None:
    # Fewer pages, fewer round trips that each wait for the one before.
    quirks = VendorQuirks(name="t", max_count=500)
    searched = plan_crawl(_capabilities(), ALL, quirks, patient_id="p", search_specs=SPECS[:1])
    assert searched.searches[0].url.endswith("_count=500")
    everything = plan_crawl(_capabilities(everything=True), ALL, quirks, patient_id="p")
    assert everything.everything_url is not None
    assert everything.everything_url.endswith("_count=500")
