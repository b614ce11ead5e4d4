"""The CapabilityStatement a health system publishes at `metadata` (pure)."""

from __future__ import annotations

from typing import Any

from ehiconnect.sandbox.config import HealthSystem
from ehiconnect.sandbox.generator import NON_COMPARTMENT_TYPES

#: Patient-compartment types the sandbox serves, in the order a crawler would fetch them.
COMPARTMENT_TYPES: tuple[str, ...] = (
    "Patient",
    "AllergyIntolerance",
    "CarePlan",
    "CareTeam",
    "Condition",
    "Coverage",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Goal",
    "Immunization",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "Provenance",
    "ServiceRequest",
)
SERVED_TYPES: tuple[str, ...] = (*COMPARTMENT_TYPES, *sorted(NON_COMPARTMENT_TYPES), "Binary")
CATEGORY_TYPES = frozenset(
    {
        "Observation",
        "Condition",
        "DiagnosticReport",
        "DocumentReference",
        "CarePlan",
        "MedicationRequest",
        "ServiceRequest",
    }
)
OBSERVATION_CATEGORIES: tuple[str, ...] = ("vital-signs", "laboratory", "social-history")
"""Every Observation category the generator uses; an Epic-like crawl searches each."""

_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def capability_statement(system: HealthSystem, fhir_base: str, auth_base: str) -> dict[str, Any]:
    resources = []
    for resource_type in SERVED_TYPES:
        entry: dict[str, Any] = {"type": resource_type, "interaction": [{"code": "read"}]}
        if resource_type != "Binary":
            entry["interaction"].append({"code": "search-type"})
            params = [{"name": "_id", "type": "token"}]
            if resource_type in COMPARTMENT_TYPES and resource_type != "Patient":
                params.append({"name": "patient", "type": "reference"})
            if resource_type in CATEGORY_TYPES:
                params.append({"name": "category", "type": "token"})
            entry["searchParam"] = params
        if resource_type == "Patient" and system.quirks.supports_everything:
            entry["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "ehiconnect sandbox", "version": "1"},
        "implementation": {"description": system.name, "url": fhir_base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": _OAUTH_URIS,
                            "extension": [
                                {"url": "authorize", "valueUri": f"{auth_base}/authorize"},
                                {"url": "token", "valueUri": f"{auth_base}/token"},
                                {"url": "revoke", "valueUri": f"{auth_base}/revoke"},
                                {"url": "introspect", "valueUri": f"{auth_base}/introspect"},
                            ],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
                "resource": resources,
            }
        ],
    }
