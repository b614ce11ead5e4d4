"""A batch of NDJSON lines as the Parquet sink's Arrow table (pure: no I/O).

The search columns (patient, codes, date, last updated) need a handful of a resource's top-level
fields, so each line is decoded by msgspec into a typed `_Head` holding only those: the rest of
the line is skipped without building Python objects, three to four times faster than parsing it
whole (orjson). The typed shapes are what FHIR R4 gives those fields (a Reference, a
CodeableConcept or a list of them, a Period, Meta). A line whose fields have another shape, or
that is not JSON at all, takes the general path: orjson parses it and `sinks.fields` reads it, so
both paths give the same columns (a unit test holds them against each other). A line neither
path reads as a JSON object is malformed: skipped and counted.

The `resource` column is the line itself, not the parsed object written again: it is the resource
as exported (whitespace and escapes as they came, around it trimmed), checked as UTF-8 once per
batch by Arrow. Lines the exporter wrote with orjson, as the platform's are, are byte for byte
what dumping the parsed object would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pyarrow as pa  # type: ignore[import-untyped]

from ehiconnect.fhir.ndjson import json_object
from ehiconnect.tracker.sinks.fields import codes_of, date_of, patient_of

SCHEMA = pa.schema(
    [
        ("resource_type", pa.string()),
        ("id", pa.string()),
        ("patient_id", pa.string()),
        ("codes", pa.list_(pa.string())),
        ("date", pa.string()),
        ("last_updated", pa.string()),
        ("resource", pa.string()),
    ]
)
_JSON_SPACE = b" \t\r\n"


@dataclass(frozen=True)
class Rows:
    """A batch's table (all types, file order) and how many of its lines were malformed."""

    table: pa.Table
    malformed: int


# gc=False: decoded JSON holds no reference cycles, so the collector need not track these.
class _Coding(msgspec.Struct, gc=False):
    system: Any = None
    code: Any = None


class _Concept(msgspec.Struct, gc=False):
    coding: list[_Coding] | None = None


class _Reference(msgspec.Struct, gc=False):
    reference: Any = None


class _Period(msgspec.Struct, gc=False):
    start: Any = None


class _Meta(msgspec.Struct, gc=False):
    lastUpdated: Any = None


_Concepts = _Concept | list[_Concept] | None


class _Head(msgspec.Struct, gc=False):
    """The fields `sinks.fields` reads, in its order of preference (keep the two in step)."""

    resourceType: Any = None
    id: Any = None
    meta: _Meta | None = None
    subject: _Reference | None = None
    patient: _Reference | None = None
    beneficiary: _Reference | None = None
    individual: _Reference | None = None
    code: _Concepts = None
    vaccineCode: _Concepts = None
    medicationCodeableConcept: _Concepts = None
    type: _Concepts = None
    effectiveDateTime: Any = None
    effectiveInstant: Any = None
    onsetDateTime: Any = None
    performedDateTime: Any = None
    authoredOn: Any = None
    recordedDate: Any = None
    occurrenceDateTime: Any = None
    issued: Any = None
    date: Any = None
    created: Any = None
    effectivePeriod: _Period | None = None
    period: _Period | None = None
    performedPeriod: _Period | None = None
    onsetPeriod: _Period | None = None


_HEAD = msgspec.json.Decoder(_Head)


def rows_of(lines: list[bytes]) -> Rows:
    """The lines' resources as one table a column at a time (lists appended in one pass, each
    turned into an Arrow array at once); resources without a string resourceType and id are
    left out, as are malformed lines."""
    kinds: list[str] = []
    ids: list[str] = []
    patients: list[str | None] = []
    codes: list[list[str]] = []
    dates: list[str | None] = []
    updated: list[str | None] = []
    bodies: list[bytes] = []
    malformed = 0
    for line in lines:
        try:
            head = _HEAD.decode(line)
        except (msgspec.DecodeError, RecursionError):
            resource = json_object(line)
            if resource is None:
                malformed += 1
                continue
            kind, rid = resource.get("resourceType"), resource.get("id")
            if not (isinstance(kind, str) and isinstance(rid, str)):
                continue
            patients.append(patient_of(resource))
            codes.append(codes_of(resource))
            dates.append(date_of(resource))
            meta = resource.get("meta")
            stamp = meta.get("lastUpdated") if isinstance(meta, dict) else None
        else:
            kind, rid = head.resourceType, head.id
            if not (isinstance(kind, str) and isinstance(rid, str)):
                continue
            patients.append(rid if kind == "Patient" else _patient(head))
            codes.append(_codes(head))
            dates.append(_date(head))
            stamp = head.meta.lastUpdated if head.meta is not None else None
        kinds.append(kind)
        ids.append(rid)
        updated.append(stamp if isinstance(stamp, str) else None)
        bodies.append(line.strip(_JSON_SPACE))
    texts = pa.array(bodies, pa.binary()).view(pa.string())
    columns: list[list[Any]] = [kinds, ids, patients, codes, dates, updated]
    if not _utf8(texts):  # text the decoder skipped is not UTF-8: malformed after all
        kept = [row for row, body in enumerate(bodies) if _is_utf8(body)]
        malformed += len(bodies) - len(kept)
        columns = [[column[row] for row in kept] for column in columns]
        texts = pa.array([bodies[row] for row in kept], pa.binary()).view(pa.string())
    arrays = [pa.array(column, field.type) for column, field in zip(columns, SCHEMA, strict=False)]
    return Rows(pa.Table.from_arrays([*arrays, texts], schema=SCHEMA), malformed)


def _utf8(texts: pa.Array) -> bool:
    try:
        texts.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _patient(head: _Head) -> str | None:
    for ref in (head.subject, head.patient, head.beneficiary, head.individual):
        if ref is not None:
            text = ref.reference
            if isinstance(text, str) and "Patient/" in text:
                return text.rpartition("Patient/")[2].partition("/")[0]
    return None


def _codes(head: _Head) -> list[str]:
    found: list[str] | None = None
    for concept in (head.code, head.vaccineCode, head.medicationCodeableConcept, head.type):
        if concept is None:
            continue
        for item in concept if isinstance(concept, list) else (concept,):
            for coding in item.coding or ():
                code = coding.code
                if isinstance(code, str):
                    system = coding.system
                    pair = f"{system if isinstance(system, str) else ''}|{code}"
                    if found is None:
                        found = [pair, code]
                    else:
                        found += (pair, code)
    if found is None:
        return []
    if len(found) == 2:  # one coding, the usual case: `system|code` never equals `code`
        return found if found[0] < found[1] else [found[1], found[0]]
    return sorted(set(found))


def _date(head: _Head) -> str | None:
    for value in (
        head.effectiveDateTime,
        head.effectiveInstant,
        head.onsetDateTime,
        head.performedDateTime,
        head.authoredOn,
        head.recordedDate,
        head.occurrenceDateTime,
        head.issued,
        head.date,
        head.created,
    ):
        if isinstance(value, str):
            return value
    for period in (head.effectivePeriod, head.period, head.performedPeriod, head.onsetPeriod):
        if period is not None and isinstance(period.start, str):
            return period.start
    return None
