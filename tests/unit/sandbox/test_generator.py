from __future__ import annotations

import importlib
import random
from collections import Counter
from typing import Any

import pytest

from ehiconnect.sandbox.config import SandboxConfig
from ehiconnect.sandbox.generator import (
    NON_COMPARTMENT_TYPES,
    expected_attachments,
    expected_resources,
    generate_record,
    resolve_persona,
)
from ehiconnect.sandbox.personas import list_personas

US_CORE_TYPES = {
    "Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "Medication",
    "AllergyIntolerance", "Immunization", "Procedure", "DiagnosticReport", "DocumentReference",
    "CarePlan", "CareTeam", "Goal", "Coverage", "Device", "ServiceRequest", "Practitioner",
    "PractitionerRole", "Organization", "Location", "Provenance",
}  # fmt: skip


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        for item in value.values():
            found += _references(item)
        return found
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    return []


def test_the_same_persona_gives_the_same_record_in_a_fresh_generator() -> None:
    system, persona = resolve_persona("harbor", "amy")
    first = generate_record(system, persona).resources
    from ehiconnect.sandbox.generator import record

    record._cached_record.cache_clear()
    again = generate_record(system, persona).resources
    assert again is not first
    assert again == first


def test_different_personas_and_systems_get_different_patients() -> None:
    ids = {p.patient_id for s in SandboxConfig().systems for p in list_personas(s)}
    assert len(ids) == sum(len(s.personas) for s in SandboxConfig().systems)


def test_every_reference_resolves_inside_the_record() -> None:
    system, persona = resolve_persona("harbor", "amy")
    record = generate_record(system, persona)
    for resource in record.resources:
        for reference in _references(resource):
            kind, _, ident = reference.partition("/")
            assert record.get(kind, ident) is not None, f"{reference} in {resource['id']}"
    for doc in record.of_type("DocumentReference"):
        url = doc["content"][0]["attachment"]["url"]
        assert url.removeprefix("Binary/") in record.attachments


def test_every_directory_resource_is_reachable_from_the_patient_compartment() -> None:
    system, persona = resolve_persona("cedar", "beth")
    record = generate_record(system, persona)
    reached = {(r["resourceType"], r["id"]) for r in record.resources
               if r["resourceType"] not in NON_COMPARTMENT_TYPES}  # fmt: skip
    pending = [ref for kind, ident in reached for ref in _references(record.get(kind, ident))]
    while pending:
        kind, _, ident = pending.pop().partition("/")
        if (kind, ident) not in reached:
            reached.add((kind, ident))
            pending += _references(record.get(kind, ident))
    assert reached == set(record.keys())


def test_a_record_has_every_us_core_type_and_unique_ids() -> None:
    keys = list(expected_resources("summit", "carl"))
    assert {kind for kind, _ in keys} == US_CORE_TYPES
    assert len(keys) == len(set(keys))


def test_listing_personas_does_not_build_records() -> None:
    system, persona = resolve_persona("harbor", "hugo")
    from ehiconnect.sandbox.generator import record

    record._cached_record.cache_clear()
    info = {p.persona_id: p for p in list_personas(system)}["hugo"]
    assert record._cached_record.cache_info().currsize == 0
    assert generate_record(system, persona).patient_id == info.patient_id


@pytest.mark.parametrize(
    ("slug", "persona_id", "resources", "megabytes"),
    [("harbor", "amy", (400, 650), (20, 40)), ("harbor", "hugo", (4000, 6000), (3000, 3200))],
)
def test_sizes_match_the_size_class(
    slug: str, persona_id: str, resources: tuple[int, int], megabytes: tuple[int, int]
) -> None:
    count = sum(1 for _ in expected_resources(slug, persona_id))
    total = sum(spec.size for spec in expected_attachments(slug, persona_id)) / 1e6
    assert resources[0] <= count <= resources[1]
    assert megabytes[0] <= total <= megabytes[1]


def test_observations_use_only_categories_an_epic_like_crawl_searches() -> None:
    from ehiconnect.sandbox.capability import OBSERVATION_CATEGORIES

    system, persona = resolve_persona("cedar", "beth")
    record = generate_record(system, persona)
    codes = Counter(
        coding["code"]
        for obs in record.of_type("Observation")
        for category in obs["category"]
        for coding in category["coding"]
    )
    assert set(codes) <= set(OBSERVATION_CATEGORIES)
    assert codes["laboratory"] > 0
    assert codes["vital-signs"] > 0


def test_labs_carry_loinc_codes_and_ucum_units() -> None:
    system, persona = resolve_persona("harbor", "amy")
    labs = [
        o
        for o in generate_record(system, persona).of_type("Observation")
        if o["category"][0]["coding"][0]["code"] == "laboratory"
    ]
    assert labs
    for lab in labs:
        assert lab["code"]["coding"][0]["system"] == "http://loinc.org"
        assert lab["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        assert lab["referenceRange"]


def test_a_sample_of_every_type_validates_as_fhir_r4() -> None:
    system, persona = resolve_persona("harbor", "amy")
    record = generate_record(system, persona)
    rng = random.Random(7)
    checked = 0
    for resource_type in sorted(US_CORE_TYPES):
        module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
        model = getattr(module, resource_type)
        for resource in rng.sample(
            record.of_type(resource_type), min(3, len(record.of_type(resource_type)))
        ):
            model.model_validate(resource)
            checked += 1
    assert checked >= len(US_CORE_TYPES)


def test_non_compartment_types_are_the_directory_types() -> None:
    assert {"Practitioner", "Organization", "Location", "Medication"} <= NON_COMPARTMENT_TYPES
    assert "Patient" not in NON_COMPARTMENT_TYPES


def test_unknown_names_say_what_exists() -> None:
    with pytest.raises(KeyError, match="known: harbor"):
        list(expected_resources("nowhere", "amy"))
    with pytest.raises(KeyError, match="known: amy"):
        list(expected_resources("harbor", "nobody"))


@pytest.mark.parametrize(("slug", "persona_id"), [("cedar", "theo"), ("summit", "tess")])
def test_every_resource_of_a_tiny_record_validates_as_fhir_r4(slug: str, persona_id: str) -> None:
    system, persona = resolve_persona(slug, persona_id)
    for resource in generate_record(system, persona).resources:
        kind = resource["resourceType"]
        module = importlib.import_module(f"fhir.resources.R4B.{kind.lower()}")
        getattr(module, kind).model_validate(resource)
