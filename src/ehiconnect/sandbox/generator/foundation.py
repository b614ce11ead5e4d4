"""Resources that exist once per record: the patient, their care network, problems and plans."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ehiconnect.sandbox.config import Persona
from ehiconnect.sandbox.generator import codes
from ehiconnect.sandbox.generator.context import (
    RecordContext,
    concept,
    day,
    problem_concept,
    ref,
    simple_concept,
)
from ehiconnect.sandbox.seeds import patient_id_for

_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_NPI = "http://hl7.org/fhir/sid/us-npi"
_OMB = "urn:oid:2.16.840.1.113883.6.238"
_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"


@dataclass
class Foundation:
    """References the per-encounter generator links to."""

    patient: str
    organizations: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    practitioners: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    chronic: list[codes.Problem] = field(default_factory=list)
    chronic_conditions: list[str] = field(default_factory=list)
    coverage: str = ""


def build_foundation(
    ctx: RecordContext, persona: Persona, system_name: str, start: dt.datetime
) -> Foundation:
    rng = ctx.rng
    found = Foundation(patient=f"Patient/{patient_id_for(ctx.seed)}")
    for n in range(2):
        org_name = system_name if n == 0 else f"{rng.choice(codes.FAMILY_NAMES)} Family Practice"
        found.organizations.append(_organization(ctx, org_name, start))
    for n in range(2):
        found.locations.append(_location(ctx, found.organizations[n], n, start))
    for _ in range(rng.randint(3, 6)):
        found.practitioners.append(_practitioner(ctx, found, start))
    _patient(ctx, persona, found, start)
    found.coverage = _coverage(ctx, found, start)
    _care_team(ctx, found, start)
    for _ in range(rng.randint(1, 2)):
        _device(ctx, found, start)
    for allergy in rng.sample(codes.ALLERGIES, rng.randint(1, 3)):
        _allergy(ctx, found, allergy, start)
    found.chronic = rng.sample(codes.CHRONIC_PROBLEMS, rng.randint(2, 4))
    for problem in found.chronic:
        found.chronic_conditions.append(_problem(ctx, found, problem, start))
    goals = [_goal(ctx, found, problem, start) for problem in found.chronic[:2]]
    _care_plan(ctx, found, goals, start)
    return found


def _organization(ctx: RecordContext, name: str, when: dt.datetime) -> str:
    rng = ctx.rng
    return ctx.add(
        {
            "resourceType": "Organization",
            "identifier": [{"system": _NPI, "value": str(rng.randrange(1_000_000_000, 2**31))}],
            "active": True,
            "name": name,
            "telecom": [{"system": "phone", "value": f"555-{rng.randrange(100, 999)}-0100"}],
            "address": [_address(ctx)],
        },
        when,
    )


def _location(ctx: RecordContext, organization: str, n: int, when: dt.datetime) -> str:
    return ctx.add(
        {
            "resourceType": "Location",
            "status": "active",
            "name": ("Main Campus", "Outpatient Clinic")[n % 2],
            "address": _address(ctx),
            "managingOrganization": ref(organization),
        },
        when,
    )


def _practitioner(ctx: RecordContext, found: Foundation, when: dt.datetime) -> str:
    rng = ctx.rng
    given, family = rng.choice(codes.GIVEN_NAMES), rng.choice(codes.FAMILY_NAMES)
    practitioner = ctx.add(
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": _NPI, "value": str(rng.randrange(1_000_000_000, 2**31))}],
            "active": True,
            "name": [{"family": family, "given": [given], "prefix": ["Dr."]}],
        },
        when,
    )
    role = ctx.add(
        {
            "resourceType": "PractitionerRole",
            "active": True,
            "practitioner": ref(practitioner, f"Dr. {given} {family}"),
            "organization": ref(rng.choice(found.organizations)),
            "code": [simple_concept(_ROLE, "doctor", "Doctor")],
            "specialty": [concept(rng.choice(codes.SPECIALTIES))],
            # Every location, so each is reachable by reference from a search-based crawl.
            "location": [ref(location) for location in found.locations],
        },
        when,
    )
    found.roles.append(role)
    return practitioner


def _address(ctx: RecordContext) -> dict[str, object]:
    rng = ctx.rng
    return {
        "line": [f"{rng.randrange(10, 9999)} {rng.choice(codes.STREETS)}"],
        "city": "Springfield",
        "state": "OR",
        "postalCode": f"97{rng.randrange(100, 999)}",
        "country": "US",
    }


def _patient(ctx: RecordContext, persona: Persona, found: Foundation, when: dt.datetime) -> None:
    rng = ctx.rng
    birth = when - dt.timedelta(days=rng.randrange(25 * 365, 80 * 365))
    race = rng.choice(
        (("2106-3", "White"), ("2054-5", "Black or African American"), ("2028-9", "Asian"))
    )
    ethnicity = rng.choice((("2186-5", "Not Hispanic or Latino"), ("2135-2", "Hispanic or Latino")))
    base = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
    ctx.add(
        {
            "resourceType": "Patient",
            "id": found.patient.split("/", 1)[1],
            "extension": [
                {
                    "url": base + "race",
                    "extension": [
                        {
                            "url": "ombCategory",
                            "valueCoding": {"system": _OMB, "code": race[0], "display": race[1]},
                        },
                        {"url": "text", "valueString": race[1]},
                    ],
                },
                {
                    "url": base + "ethnicity",
                    "extension": [
                        {
                            "url": "ombCategory",
                            "valueCoding": {
                                "system": _OMB,
                                "code": ethnicity[0],
                                "display": ethnicity[1],
                            },
                        },
                        {"url": "text", "valueString": ethnicity[1]},
                    ],
                },
            ],
            "identifier": [
                {
                    "use": "usual",
                    "type": simple_concept(
                        "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "MR",
                        "Medical Record Number",
                    ),
                    "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14",
                    "value": f"MRN{rng.randrange(10_000_000, 99_999_999)}",
                }
            ],
            "active": True,
            "name": [
                {"use": "official", "family": persona.family_name, "given": [persona.given_name]}
            ],
            "telecom": [
                {
                    "system": "phone",
                    "value": f"555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
                    "use": "mobile",
                },
                {"system": "email", "value": f"{persona.username}@example.com"},
            ],
            "gender": persona.gender,
            "birthDate": day(birth),
            "address": [_address(ctx)],
            "managingOrganization": ref(found.organizations[0]),
            "generalPractitioner": [ref(found.practitioners[0])],
        },
        when,
    )


def _coverage(ctx: RecordContext, found: Foundation, when: dt.datetime) -> str:
    rng = ctx.rng
    payer = ctx.add(
        {"resourceType": "Organization", "active": True, "name": rng.choice(codes.PAYERS)}, when
    )
    return ctx.add(
        {
            "resourceType": "Coverage",
            "status": "active",
            "type": simple_concept("urn:oid:2.16.840.1.113883.3.221.5", "1", "MEDICARE"),
            "subscriberId": f"W{rng.randrange(10_000_000, 99_999_999)}",
            "beneficiary": ref(found.patient),
            "relationship": simple_concept(
                "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self"
            ),
            "period": {"start": day(when)},
            "payor": [ref(payer)],
        },
        when,
    )


def _care_team(ctx: RecordContext, found: Foundation, when: dt.datetime) -> None:
    ctx.add(
        {
            "resourceType": "CareTeam",
            "status": "active",
            "name": "Primary care team",
            "subject": ref(found.patient),
            "participant": [
                {"role": [concept(codes.SPECIALTIES[0])], "member": ref(role)}
                for role in found.roles
            ],
            "managingOrganization": [ref(found.organizations[0])],
        },
        when,
    )


def _device(ctx: RecordContext, found: Foundation, when: dt.datetime) -> None:
    rng = ctx.rng
    kind = rng.choice(codes.DEVICES)
    ctx.add(
        {
            "resourceType": "Device",
            "udiCarrier": [
                {
                    "deviceIdentifier": f"{rng.randrange(10**13, 10**14)}",
                    "carrierHRF": f"(01){rng.randrange(10**13, 10**14)}",
                }
            ],
            "status": "active",
            "type": concept(kind),
            "patient": ref(found.patient),
        },
        when,
    )


def _allergy(
    ctx: RecordContext, found: Foundation, allergy: codes.Coded, when: dt.datetime
) -> None:
    ctx.add(
        {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": simple_concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"
            ),
            "verificationStatus": simple_concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed"
            ),
            "category": ["food" if "food" in allergy.display.lower() else "environment"],
            "code": concept(allergy),
            "patient": ref(found.patient),
            "recordedDate": day(when),
            "reaction": [
                {
                    "manifestation": [
                        concept(codes.Coded(codes.SNOMED, "271807003", "Eruption of skin"))
                    ]
                }
            ],
        },
        when,
    )


def _problem(
    ctx: RecordContext, found: Foundation, problem: codes.Problem, when: dt.datetime
) -> str:
    onset = when - dt.timedelta(days=ctx.rng.randrange(30, 3650))
    return ctx.add(
        {
            "resourceType": "Condition",
            "clinicalStatus": simple_concept(_CLINICAL, "active"),
            "verificationStatus": simple_concept(_VERIFICATION, "confirmed"),
            "category": [simple_concept(_CONDITION_CATEGORY, "problem-list-item")],
            "code": problem_concept(problem),
            "subject": ref(found.patient),
            "onsetDateTime": day(onset),
            "recordedDate": day(when),
        },
        when,
    )


def _goal(ctx: RecordContext, found: Foundation, problem: codes.Problem, when: dt.datetime) -> str:
    return ctx.add(
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": f"Keep {problem.display.lower()} under control"},
            "subject": ref(found.patient),
            "target": [{"dueDate": day(when + dt.timedelta(days=365))}],
        },
        when,
    )


def _care_plan(ctx: RecordContext, found: Foundation, goals: list[str], when: dt.datetime) -> None:
    ctx.add(
        {
            "resourceType": "CarePlan",
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">Chronic care plan</div>',
            },
            "status": "active",
            "intent": "plan",
            "category": [
                simple_concept(
                    "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan"
                )
            ],
            "subject": ref(found.patient),
            "period": {"start": day(when)},
            "addresses": [ref(c) for c in found.chronic_conditions],
            "goal": [ref(g) for g in goals],
        },
        when,
    )
