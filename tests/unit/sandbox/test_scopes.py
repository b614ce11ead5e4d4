from __future__ import annotations

import pytest

from ehiconnect.sandbox.scopes import consented, narrow, parse_scopes


@pytest.mark.parametrize(
    ("scope", "resource_type", "interaction", "allowed"),
    [
        ("patient/*.read", "Observation", "r", True),
        ("patient/*.read", "Observation", "s", True),
        ("patient/Observation.read", "Observation", "s", True),
        ("patient/Observation.read", "Condition", "r", False),
        ("patient/*.rs", "Binary", "r", True),
        ("patient/Observation.rs", "Observation", "s", True),
        ("patient/Observation.r", "Observation", "s", False),
        ("patient/Observation.s", "Observation", "r", False),
        ("patient/Observation.cruds", "Observation", "r", True),
        ("patient/*.write", "Observation", "r", False),
        ("patient/*.*", "Encounter", "s", True),
        ("user/*.read", "Observation", "r", False),
        ("system/*.rs", "Observation", "r", False),
        ("launch/patient offline_access", "Patient", "r", False),
    ],
)
def test_v1_and_v2_scopes_decide_read_and_search(
    scope: str, resource_type: str, interaction: str, allowed: bool
) -> None:
    assert parse_scopes(scope).allows(resource_type, interaction) is allowed  # type: ignore[arg-type]


def test_versions_and_non_clinical_scopes_are_recognised() -> None:
    parsed = parse_scopes("launch/patient offline_access patient/*.read patient/Condition.rs bogus")
    assert [s.version for s in parsed.clinical] == [1, 2]
    assert parsed.offline
    assert parsed.wants_patient
    assert parsed.unknown == ("bogus",)


@pytest.mark.parametrize(
    "bad", ["patient/Observation.", "patient/Observation.sr", "patient/obs.rs"]
)
def test_malformed_clinical_scopes_grant_nothing(bad: str) -> None:
    parsed = parse_scopes(bad)
    assert parsed.clinical == ()
    assert not parsed.allows("Observation", "r")


def test_a_v2_query_scope_allows_only_matching_searches() -> None:
    parsed = parse_scopes("patient/Observation.rs?category=laboratory")
    assert not parsed.allows("Observation", "s")
    assert parsed.allows_search("Observation", {"patient": "p", "category": "laboratory"})
    assert not parsed.allows_search("Observation", {"patient": "p", "category": "vital-signs"})
    assert not parsed.allows_search("Observation", {"patient": "p"})


def test_narrowing_keeps_only_ticked_scopes_that_were_requested() -> None:
    requested = parse_scopes("launch/patient patient/Observation.rs patient/Condition.rs")
    granted = narrow(requested, {"launch/patient", "patient/Condition.rs", "patient/*.rs"})
    assert granted.to_string() == "launch/patient patient/Condition.rs"
    assert granted.allows("Condition", "r")
    assert not granted.allows("Observation", "r")


def test_duplicates_are_dropped_in_order() -> None:
    assert parse_scopes("a b a patient/*.rs b").raw == ("a", "b", "patient/*.rs")


def test_a_fully_ticked_wildcard_is_granted_as_asked() -> None:
    requested = parse_scopes("launch/patient offline_access patient/*.rs")
    granted = consented(requested, {"launch/patient", "offline_access"}, {"A", "B"}, ["A", "B"])
    assert granted.to_string() == "launch/patient offline_access patient/*.rs"


def test_an_unticked_type_spells_the_wildcard_out_without_it() -> None:
    requested = parse_scopes("launch/patient patient/*.read offline_access")
    granted = consented(
        requested,
        {"launch/patient"},
        {"Patient", "Condition"},
        ["Patient", "Observation", "Condition"],
    )
    assert granted.to_string() == "launch/patient patient/Patient.read patient/Condition.read"
    assert not granted.offline
    assert not granted.allows("Observation", "s")
    assert granted.allows("Condition", "s")
