"""The collection lists stay consistent with each other and with FHIR naming."""

from __future__ import annotations

import re

from ehiconnect.fhir.resource_types import (
    HYDRATE_BY_REFERENCE,
    PATIENT_READ_TYPE,
    PATIENT_SEARCHES,
    SEARCH_SPECS_BY_TYPE,
)


def test_every_searched_type_appears_once_and_patient_is_read_not_searched() -> None:
    types = [spec.resource_type for spec in PATIENT_SEARCHES]
    assert len(types) == len(set(types)) == len(SEARCH_SPECS_BY_TYPE)
    assert PATIENT_READ_TYPE not in types
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", t) for t in types)


def test_us_core_clinical_types_are_collected() -> None:
    for required in (
        "AllergyIntolerance",
        "Condition",
        "DocumentReference",
        "Observation",
        "MedicationRequest",
        "Immunization",
        "Procedure",
        "Encounter",
    ):
        assert required in SEARCH_SPECS_BY_TYPE


def test_adverse_event_is_searched_by_subject_because_r4_has_no_patient_param() -> None:
    assert SEARCH_SPECS_BY_TYPE["AdverseEvent"].patient_param == "subject"


def test_hydrated_types_include_the_us_core_reference_targets() -> None:
    assert {"Practitioner", "PractitionerRole", "Organization", "Location", "Medication"} <= (
        HYDRATE_BY_REFERENCE
    )
