"""The tracker FHIR API's request checks: what is refused, with which status, naming what."""

from __future__ import annotations

from typing import Any

import pytest

from ehiconnect.tracker.fhir_query import (
    FHIR_INTEGER_MAX,
    R4_RESOURCE_TYPES,
    BadFhirRequest,
    check_resource_type,
    search_query,
)
from ehiconnect.tracker.sinks.fhir_store import MAX_PAGE, SearchQuery


def _query(**params: Any) -> SearchQuery:
    values: dict[str, Any] = {
        "patient": None,
        "code": None,
        "dates": [],
        "count": None,
        "offset": None,
    }
    values.update(params)
    return search_query("Observation", **values)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"patient": "p1\x00"}, "patient"),
        ({"code": "8867-4\x00"}, "code"),
        ({"code": "a\nb"}, "code"),
        ({"dates": ["ge2025", "le2026\x00"]}, "date"),
    ],
)
def test_control_characters_are_refused_naming_the_parameter(
    params: dict[str, Any], named: str
) -> None:
    with pytest.raises(BadFhirRequest) as refused:
        _query(**params)

    assert refused.value.status == 400
    assert refused.value.code == "invalid"
    assert refused.value.diagnostics.startswith(f"{named} contains a control character")


@pytest.mark.parametrize("value", ["-1", "1.5", "1e3", "1_0", " 7", "٣", "2147483648", "9" * 40])
@pytest.mark.parametrize("name", ["_count", "_offset"])
def test_paging_parameters_outside_fhir_integers_are_refused(name: str, value: str) -> None:
    with pytest.raises(BadFhirRequest) as refused:
        _query(**{name.removeprefix("_"): value})

    assert refused.value.status == 400
    assert refused.value.diagnostics == f"{name} must be a whole number from 0 to 2147483647"


def test_paging_parameters_within_range() -> None:
    query = _query(count=str(FHIR_INTEGER_MAX), offset=str(FHIR_INTEGER_MAX))

    assert query.count == MAX_PAGE
    assert query.offset == FHIR_INTEGER_MAX
    assert _query().count == 100


@pytest.mark.parametrize("name", ["observation", "Observatoin", "", "Observation "])
def test_unknown_resource_types_are_404(name: str) -> None:
    with pytest.raises(BadFhirRequest) as refused:
        check_resource_type(name)

    assert refused.value.status == 404
    assert refused.value.code == "not-supported"
    assert refused.value.diagnostics.endswith(
        "is not a FHIR R4 resource type (they are case-sensitive)"
    )


def test_resource_type_with_a_control_character_is_400() -> None:
    with pytest.raises(BadFhirRequest) as refused:
        check_resource_type("Foo\x00")

    assert refused.value.status == 400
    assert refused.value.diagnostics.startswith("the resource type contains a control character")


def test_r4_resource_types_are_known() -> None:
    for name in ("Observation", "Patient", "Binary", "DocumentReference", "List"):
        check_resource_type(name)
    assert len(R4_RESOURCE_TYPES) == 146
