"""The mutable state of one record being generated, and small FHIR value helpers."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from ehiconnect.sandbox.generator.attachments import AttachmentSpec
from ehiconnect.sandbox.generator.codes import ICD10, SNOMED, Coded, Problem
from ehiconnect.sandbox.seeds import stable_id

Resource = dict[str, Any]

#: Generated records end here; fixed so the same seed gives the same dates on any day.
RECORD_END = dt.datetime(2026, 6, 30, 17, 0, tzinfo=dt.UTC)

_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
US_CORE_PROFILES: dict[str, str] = {
    "Patient": _US_CORE + "patient",
    "Encounter": _US_CORE + "encounter",
    "Condition": _US_CORE + "condition-problems-health-concerns",
    "MedicationRequest": _US_CORE + "medicationrequest",
    "Medication": _US_CORE + "medication",
    "AllergyIntolerance": _US_CORE + "allergyintolerance",
    "Immunization": _US_CORE + "immunization",
    "Procedure": _US_CORE + "procedure",
    "DiagnosticReport": _US_CORE + "diagnosticreport-lab",
    "DocumentReference": _US_CORE + "documentreference",
    "CarePlan": _US_CORE + "careplan",
    "CareTeam": _US_CORE + "careteam",
    "Goal": _US_CORE + "goal",
    "Coverage": _US_CORE + "coverage",
    "Device": _US_CORE + "implantable-device",
    "ServiceRequest": _US_CORE + "servicerequest",
    "Practitioner": _US_CORE + "practitioner",
    "PractitionerRole": _US_CORE + "practitionerrole",
    "Organization": _US_CORE + "organization",
    "Location": _US_CORE + "location",
    "Provenance": _US_CORE + "provenance",
}


@dataclass
class RecordContext:
    """Collects resources and attachment specs in a deterministic order."""

    seed: int
    rng: random.Random
    resources: list[Resource] = field(default_factory=list)
    attachments: list[AttachmentSpec] = field(default_factory=list)
    _counters: dict[str, int] = field(default_factory=dict)

    def new_id(self, resource_type: str) -> str:
        n = self._counters.get(resource_type, 0)
        self._counters[resource_type] = n + 1
        return stable_id(self.seed, resource_type, n)

    def add(self, resource: Resource, when: dt.datetime) -> str:
        """Append `resource` (its `id` assigned if missing); returns its reference `Type/id`."""
        resource_type = resource["resourceType"]
        resource.setdefault("id", self.new_id(resource_type))
        meta: dict[str, Any] = {"versionId": "1", "lastUpdated": instant(when)}
        if resource_type in US_CORE_PROFILES:
            meta["profile"] = [US_CORE_PROFILES[resource_type]]
        resource["meta"] = meta
        self.resources.append(resource)
        return f"{resource_type}/{resource['id']}"

    def sub_seed(self) -> int:
        return self.rng.getrandbits(63)


def instant(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d")


def coding(coded: Coded) -> dict[str, str]:
    return {"system": coded.system, "code": coded.code, "display": coded.display}


def concept(coded: Coded) -> dict[str, Any]:
    return {"coding": [coding(coded)], "text": coded.display}


def problem_concept(problem: Problem) -> dict[str, Any]:
    """A condition's code in SNOMED CT and ICD-10-CM, as US Core asks for."""
    return {
        "coding": [
            {"system": SNOMED, "code": problem.snomed, "display": problem.display},
            {"system": ICD10, "code": problem.icd10, "display": problem.display},
        ],
        "text": problem.display,
    }


def simple_concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    item: dict[str, str] = {"system": system, "code": code}
    if display:
        item["display"] = display
    return {"coding": [item]}


def ref(reference: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": reference}
    if display:
        out["display"] = display
    return out


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
