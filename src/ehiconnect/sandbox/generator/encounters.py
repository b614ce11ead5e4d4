"""Everything one visit produces: the Encounter, vitals, labs, orders, notes and provenance."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ehiconnect.sandbox.generator import codes
from ehiconnect.sandbox.generator.attachments import AttachmentKind, make_spec
from ehiconnect.sandbox.generator.context import (
    RecordContext,
    coding,
    concept,
    day,
    instant,
    problem_concept,
    quantity,
    ref,
    simple_concept,
)
from ehiconnect.sandbox.generator.foundation import Foundation

_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
_DOC_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
_PROVENANCE_ROLE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def build_encounter(
    ctx: RecordContext,
    found: Foundation,
    when: dt.datetime,
    note_bytes: int,
    documents: list[tuple[AttachmentKind, int]],
) -> None:
    """Add one visit at `when` with a text note of `note_bytes`; `documents` are extra
    (kind, payload bytes) attachments filed at this visit."""
    rng = ctx.rng
    practitioner = rng.choice(found.practitioners)
    emergency = rng.random() < 0.08
    kind = codes.ENCOUNTER_TYPES[3] if emergency else rng.choice(codes.ENCOUNTER_TYPES[:3])
    encounter = ctx.add(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {
                "system": _ACT,
                "code": "EMER" if emergency else "AMB",
                "display": "emergency" if emergency else "ambulatory",
            },
            "type": [concept(kind)],
            "subject": ref(found.patient),
            "participant": [{"individual": ref(practitioner)}],
            "period": {"start": instant(when), "end": instant(when + dt.timedelta(minutes=40))},
            "location": [{"location": ref(rng.choice(found.locations))}],
            "serviceProvider": ref(found.organizations[0]),
        },
        when,
    )
    targets = [encounter]
    targets += _vitals(ctx, found, encounter, when)
    if rng.random() < 0.45:
        targets += _labs(ctx, found, encounter, practitioner, when)
    if rng.random() < 0.35:
        targets.append(_diagnosis(ctx, found, encounter, when))
    if rng.random() < 0.5:
        targets.append(_prescription(ctx, found, encounter, practitioner, when))
    if rng.random() < 0.2:
        targets.append(_immunization(ctx, found, encounter, when))
    if rng.random() < 0.3:
        targets.append(_procedure(ctx, found, encounter, when))
    note_type = rng.choice(codes.NOTE_TYPES)
    targets.append(
        _document(ctx, found, encounter, practitioner, when, note_type, "note", note_bytes)
    )
    for doc_kind, payload in documents:
        doc_type = codes.IMAGING_REPORT if doc_kind in ("png", "dicom") else codes.SCANNED_DOCUMENT
        targets.append(
            _document(ctx, found, encounter, practitioner, when, doc_type, doc_kind, payload)
        )
    ctx.add(
        {
            "resourceType": "Provenance",
            "target": [ref(t) for t in targets],
            "recorded": instant(when + dt.timedelta(hours=1)),
            "agent": [
                {
                    "type": simple_concept(_PROVENANCE_ROLE, "author", "Author"),
                    "who": ref(practitioner),
                    "onBehalfOf": ref(found.organizations[0]),
                }
            ],
        },
        when,
    )


def _observation(
    ctx: RecordContext,
    found: Foundation,
    encounter: str,
    when: dt.datetime,
    category: str,
    code: tuple[str, str],
    **value: Any,
) -> str:
    return ctx.add(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [simple_concept(codes.OBS_CATEGORY, category)],
            "code": {
                "coding": [{"system": codes.LOINC, "code": code[0], "display": code[1]}],
                "text": code[1],
            },
            "subject": ref(found.patient),
            "encounter": ref(encounter),
            "effectiveDateTime": instant(when),
            "issued": instant(when + dt.timedelta(minutes=30)),
            **value,
        },
        when,
    )


def _vitals(ctx: RecordContext, found: Foundation, encounter: str, when: dt.datetime) -> list[str]:
    rng = ctx.rng
    made = [
        _observation(
            ctx,
            found,
            encounter,
            when,
            "vital-signs",
            codes.BLOOD_PRESSURE,
            component=[
                {
                    "code": {"coding": [{"system": codes.LOINC, "code": c[0], "display": c[1]}]},
                    "valueQuantity": quantity(v, "mm[Hg]"),
                }
                for c, v in (
                    (codes.SYSTOLIC, rng.randint(105, 150)),
                    (codes.DIASTOLIC, rng.randint(62, 95)),
                )
            ],
        )
    ]
    for vital in rng.sample(codes.VITALS, rng.randint(3, 6)):
        value = round(rng.uniform(vital.low, vital.high), vital.decimals)
        made.append(
            _observation(
                ctx,
                found,
                encounter,
                when,
                "vital-signs",
                (vital.loinc, vital.display),
                valueQuantity=quantity(value, vital.unit),
            )
        )
    if rng.random() < 0.25:
        status = rng.choice((("266919005", "Never smoked tobacco"), ("8517006", "Ex-smoker")))
        made.append(
            _observation(
                ctx,
                found,
                encounter,
                when,
                "social-history",
                ("72166-2", "Tobacco smoking status"),
                valueCodeableConcept=concept(codes.Coded(codes.SNOMED, *status)),
            )
        )
    return made


def _labs(
    ctx: RecordContext, found: Foundation, encounter: str, practitioner: str, when: dt.datetime
) -> list[str]:
    rng = ctx.rng
    panel = rng.choice(codes.LAB_PANELS)
    order = ctx.add(
        {
            "resourceType": "ServiceRequest",
            "status": "completed",
            "intent": "order",
            "category": [simple_concept(codes.SNOMED, "108252007", "Laboratory procedure")],
            "code": concept(codes.Coded(codes.LOINC, panel.loinc, panel.display)),
            "subject": ref(found.patient),
            "encounter": ref(encounter),
            "authoredOn": instant(when),
            "requester": ref(practitioner),
        },
        when,
    )
    results = []
    for lab in panel.labs:
        spread = (lab.ref_high - lab.ref_low) * 0.3
        value = round(rng.uniform(lab.ref_low - spread, lab.ref_high + spread), lab.decimals)
        flag = "H" if value > lab.ref_high else "L" if value < lab.ref_low else "N"
        results.append(
            _observation(
                ctx,
                found,
                encounter,
                when,
                "laboratory",
                (lab.loinc, lab.display),
                valueQuantity=quantity(value, lab.unit),
                interpretation=[
                    simple_concept(
                        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", flag
                    )
                ],
                referenceRange=[
                    {
                        "low": quantity(lab.ref_low, lab.unit),
                        "high": quantity(lab.ref_high, lab.unit),
                    }
                ],
                basedOn=[ref(order)],
            )
        )
    report = ctx.add(
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": [simple_concept(_V2_0074, "LAB", "Laboratory")],
            "code": concept(codes.Coded(codes.LOINC, panel.loinc, panel.display)),
            "subject": ref(found.patient),
            "encounter": ref(encounter),
            "effectiveDateTime": instant(when),
            "issued": instant(when + dt.timedelta(hours=4)),
            "performer": [ref(found.organizations[0])],
            "basedOn": [ref(order)],
            "result": [ref(r) for r in results],
        },
        when,
    )
    return [order, *results, report]


def _diagnosis(ctx: RecordContext, found: Foundation, encounter: str, when: dt.datetime) -> str:
    problem = ctx.rng.choice(codes.ACUTE_PROBLEMS)
    return ctx.add(
        {
            "resourceType": "Condition",
            "clinicalStatus": simple_concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved"
            ),
            "verificationStatus": simple_concept(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"
            ),
            "category": [
                simple_concept(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "encounter-diagnosis",
                )
            ],
            "code": problem_concept(problem),
            "subject": ref(found.patient),
            "encounter": ref(encounter),
            "onsetDateTime": instant(when),
            "abatementDateTime": instant(when + dt.timedelta(days=14)),
            "recordedDate": instant(when),
        },
        when,
    )


def _prescription(
    ctx: RecordContext, found: Foundation, encounter: str, practitioner: str, when: dt.datetime
) -> str:
    rng = ctx.rng
    drug = rng.choice(codes.MEDICATIONS)
    medication = ctx.add({"resourceType": "Medication", "code": concept(drug)}, when)
    return ctx.add(
        {
            "resourceType": "MedicationRequest",
            "status": rng.choice(("active", "completed", "stopped")),
            "intent": "order",
            "category": [
                simple_concept(
                    "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "community"
                )
            ],
            "medicationReference": ref(medication, drug.display),
            "subject": ref(found.patient),
            "encounter": ref(encounter),
            "authoredOn": instant(when),
            "requester": ref(practitioner),
            "reasonReference": [ref(rng.choice(found.chronic_conditions))],
            "dosageInstruction": [
                {
                    "text": "Take one by mouth daily",
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                }
            ],
            "dispenseRequest": {
                "numberOfRepeatsAllowed": rng.randint(0, 5),
                "quantity": quantity(30, "{tbl}"),
            },
        },
        when,
    )


def _immunization(ctx: RecordContext, found: Foundation, encounter: str, when: dt.datetime) -> str:
    return ctx.add(
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": concept(ctx.rng.choice(codes.VACCINES)),
            "patient": ref(found.patient),
            "encounter": ref(encounter),
            "occurrenceDateTime": instant(when),
            "primarySource": True,
            "location": ref(found.locations[0]),
        },
        when,
    )


def _procedure(ctx: RecordContext, found: Foundation, encounter: str, when: dt.datetime) -> str:
    return ctx.add(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": concept(ctx.rng.choice(codes.PROCEDURES)),
            "subject": ref(found.patient),
            "encounter": ref(encounter),
            "performedDateTime": instant(when),
            "location": ref(found.locations[0]),
        },
        when,
    )


def _document(
    ctx: RecordContext,
    found: Foundation,
    encounter: str,
    author: str,
    when: dt.datetime,
    doc_type: codes.Coded,
    kind: AttachmentKind,
    payload: int,
) -> str:
    binary_id = ctx.new_id("Binary")
    title = f"{doc_type.display} {day(when)}"
    spec = make_spec(binary_id, kind, ctx.sub_seed(), title, payload)
    ctx.attachments.append(spec)
    return ctx.add(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "docStatus": "final",
            "type": {"coding": [coding(doc_type)], "text": doc_type.display},
            "category": [simple_concept(_DOC_CATEGORY, "clinical-note", "Clinical Note")],
            "subject": ref(found.patient),
            "date": instant(when),
            "author": [ref(author)],
            "custodian": ref(found.organizations[0]),
            "content": [
                {
                    "attachment": {
                        "contentType": spec.content_type,
                        "url": f"Binary/{binary_id}",
                        "size": spec.size,
                        "title": title,
                        "creation": instant(when),
                    },
                    "format": {
                        "system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                        "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                        "display": "mimeType Sufficient",
                    },
                }
            ],
            "context": {"encounter": [ref(encounter)], "period": {"start": instant(when)}},
        },
        when,
    )
