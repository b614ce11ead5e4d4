"""Reading the tracker's FHIR API requests: resource types, ids and search parameters.

Pure checks over the request's values, so a bad request is a 4xx OperationOutcome naming the
parameter, never a value PostgreSQL refuses (a NUL, an OFFSET past its bigint) or a silent
default. `_count` and `_offset` are FHIR `integer`s (32-bit, 0 or more); a `_count` above the
page limit is served as the limit, which FHIR allows a server to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ehiconnect.tracker.sinks.fhir_store import MAX_PAGE, SearchQuery

FHIR_INTEGER_MAX = 2**31 - 1
DEFAULT_COUNT = 100

# FHIR R4 (4.0.1) resource types, http://hl7.org/fhir/R4/resourcelist.html
R4_RESOURCE_TYPES = frozenset(
    [
        "Account",
        "ActivityDefinition",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "AppointmentResponse",
        "AuditEvent",
        "Basic",
        "Binary",
        "BiologicallyDerivedProduct",
        "BodyStructure",
        "Bundle",
        "CapabilityStatement",
        "CarePlan",
        "CareTeam",
        "CatalogEntry",
        "ChargeItem",
        "ChargeItemDefinition",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "CodeSystem",
        "Communication",
        "CommunicationRequest",
        "CompartmentDefinition",
        "Composition",
        "ConceptMap",
        "Condition",
        "Consent",
        "Contract",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceDefinition",
        "DeviceMetric",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "EffectEvidenceSynthesis",
        "Encounter",
        "Endpoint",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "EpisodeOfCare",
        "EventDefinition",
        "Evidence",
        "EvidenceVariable",
        "ExampleScenario",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "GraphDefinition",
        "Group",
        "GuidanceResponse",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "ImplementationGuide",
        "InsurancePlan",
        "Invoice",
        "Library",
        "Linkage",
        "List",
        "Location",
        "Measure",
        "MeasureReport",
        "Media",
        "Medication",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationKnowledge",
        "MedicationRequest",
        "MedicationStatement",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "MessageDefinition",
        "MessageHeader",
        "MolecularSequence",
        "NamingSystem",
        "NutritionOrder",
        "Observation",
        "ObservationDefinition",
        "OperationDefinition",
        "OperationOutcome",
        "Organization",
        "OrganizationAffiliation",
        "Parameters",
        "Patient",
        "PaymentNotice",
        "PaymentReconciliation",
        "Person",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RequestGroup",
        "ResearchDefinition",
        "ResearchElementDefinition",
        "ResearchStudy",
        "ResearchSubject",
        "RiskAssessment",
        "RiskEvidenceSynthesis",
        "Schedule",
        "SearchParameter",
        "ServiceRequest",
        "Slot",
        "Specimen",
        "SpecimenDefinition",
        "StructureDefinition",
        "StructureMap",
        "Subscription",
        "Substance",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "SupplyDelivery",
        "SupplyRequest",
        "Task",
        "TerminologyCapabilities",
        "TestReport",
        "TestScript",
        "ValueSet",
        "VerificationResult",
        "VisionPrescription",
    ]
)
_DIGITS = re.compile(r"[0-9]{1,10}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class BadFhirRequest(Exception):
    """The request cannot be served; `status` and `code` (a FHIR IssueType) say how."""

    status: int
    code: str
    diagnostics: str


def check_resource_type(resource_type: str) -> None:
    check_text("the resource type", resource_type)
    if resource_type not in R4_RESOURCE_TYPES:
        shown = resource_type[:64]
        raise BadFhirRequest(
            404,
            "not-supported",
            f"{shown!r} is not a FHIR R4 resource type (they are case-sensitive)",
        )


def check_text(name: str, value: str) -> str:
    """A text parameter PostgreSQL can compare: no control characters (NUL among them)."""
    if _CONTROL.search(value):
        raise BadFhirRequest(
            400, "invalid", f"{name} contains a control character; send printable text only"
        )
    return value


def fhir_integer(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not _DIGITS.fullmatch(value) or int(value) > FHIR_INTEGER_MAX:
        raise BadFhirRequest(
            400,
            "invalid",
            f"{name} must be a whole number from 0 to {FHIR_INTEGER_MAX}",
        )
    return int(value)


def search_query(
    resource_type: str,
    *,
    patient: str | None,
    code: str | None,
    dates: Sequence[str],
    count: str | None,
    offset: str | None,
) -> SearchQuery:
    """The store query of GET /fhir/{type}?…; BadFhirRequest names the parameter that is wrong."""
    check_resource_type(resource_type)
    for date in dates:
        check_text("date", date)
    return SearchQuery(
        resource_type=resource_type,
        patient=check_text("patient", patient) if patient else None,
        code=check_text("code", code) if code else None,
        date_ge=next((d[2:] for d in dates if d.startswith("ge")), None),
        date_le=next((d[2:] for d in dates if d.startswith("le")), None),
        count=min(fhir_integer("_count", count, DEFAULT_COUNT), MAX_PAGE),
        offset=fhir_integer("_offset", offset, 0),
    )
