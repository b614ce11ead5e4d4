"""Which FHIR resource types an export collects, and how, kept as data.

Where the lists come from:

- `PATIENT_SEARCHES`: the resource types profiled by US Core 6.1/7.0 that live in the FHIR R4
  Patient compartment (http://hl7.org/fhir/R4/compartmentdefinition-patient.html), plus other
  compartment types commonly exposed by certified patient-access APIs and needed for a full EHI
  export (claims, imaging, notes, consents). Each is searched per patient with the parameter named
  here: `patient` where R4 defines it, `subject` where R4 does not (AdverseEvent). A server that
  does not list a type in its CapabilityStatement is not searched for it (see `crawler.plan`).
- `Patient` itself is read by id (`Patient/{id}`), never searched.
- `HYDRATE_BY_REFERENCE`: types that are not in the patient compartment (or are often reached only
  through references) and are fetched by id when a collected resource points at them: the
  clinicians, organizations, locations and medications of US Core, and Observations referenced
  from DiagnosticReport.result / hasMember that a category-restricted search may have missed.
- The category lists are the US Core value sets' codes, used when a server requires one search per
  category (see `crawler.quirks`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchSpec:
    """How to search one resource type for a patient: `{resource_type}?{patient_param}={id}`."""

    resource_type: str
    patient_param: str = "patient"
    alternative_param: str | None = "subject"
    """Used instead when the server declares it and not `patient_param`."""


PATIENT_READ_TYPE = "Patient"

PATIENT_SEARCHES: tuple[SearchSpec, ...] = (
    # US Core 6.1 / 7.0 profiled types
    SearchSpec("AllergyIntolerance", alternative_param=None),
    SearchSpec("CarePlan"),
    SearchSpec("CareTeam", alternative_param=None),
    SearchSpec("Condition", alternative_param="subject"),
    SearchSpec("Coverage", alternative_param="beneficiary"),
    SearchSpec("Device", alternative_param=None),
    SearchSpec("DiagnosticReport"),
    SearchSpec("DocumentReference"),
    SearchSpec("Encounter"),
    SearchSpec("Goal", alternative_param="subject"),
    SearchSpec("Immunization", alternative_param=None),
    SearchSpec("MedicationDispense", alternative_param="subject"),
    SearchSpec("MedicationRequest", alternative_param="subject"),
    SearchSpec("Observation"),
    SearchSpec("Procedure"),
    SearchSpec("Provenance", alternative_param=None),
    SearchSpec("QuestionnaireResponse"),
    SearchSpec("RelatedPerson", alternative_param=None),
    SearchSpec("ServiceRequest"),
    SearchSpec("Specimen"),
    # Further Patient-compartment types that carry EHI
    SearchSpec("AdverseEvent", patient_param="subject", alternative_param=None),
    SearchSpec("Appointment", patient_param="patient", alternative_param="actor"),
    SearchSpec("Claim", alternative_param=None),
    SearchSpec("Communication"),
    SearchSpec("Consent", alternative_param=None),
    SearchSpec("ExplanationOfBenefit", alternative_param=None),
    SearchSpec("FamilyMemberHistory", alternative_param=None),
    SearchSpec("ImagingStudy", alternative_param="subject"),
    SearchSpec("Media", alternative_param="subject"),
    SearchSpec("MedicationAdministration", alternative_param="subject"),
    SearchSpec("MedicationStatement", alternative_param="subject"),
    SearchSpec("NutritionOrder", alternative_param=None),
)

HYDRATE_BY_REFERENCE: frozenset[str] = frozenset(
    {
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "Medication",
        "Observation",
    }
)

# US Core Observation category codes (http://terminology.hl7.org/CodeSystem/observation-category
# plus US Core's `sdoh`), the usual values for a per-category fan-out.
OBSERVATION_CATEGORIES: tuple[str, ...] = (
    "laboratory",
    "vital-signs",
    "social-history",
    "survey",
    "exam",
    "imaging",
    "procedure",
    "therapy",
    "activity",
    "sdoh",
)

# US Core Condition categories (problems, encounter diagnoses, health concerns).
CONDITION_CATEGORIES: tuple[str, ...] = (
    "problem-list-item",
    "encounter-diagnosis",
    "health-concern",
)

# US Core DiagnosticReport categories: laboratory reports and clinical notes.
DIAGNOSTIC_REPORT_CATEGORIES: tuple[str, ...] = ("LAB", "RAD", "CARD", "PAT")

# US Core DocumentReference category.
DOCUMENT_REFERENCE_CATEGORIES: tuple[str, ...] = ("clinical-note",)

SEARCH_SPECS_BY_TYPE: dict[str, SearchSpec] = {
    spec.resource_type: spec for spec in PATIENT_SEARCHES
}
