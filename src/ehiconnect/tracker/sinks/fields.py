"""Search fields pulled from a resource (pure): its patient, codes and clinically relevant date."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_PATIENT_KEYS = ("subject", "patient", "beneficiary", "individual")
_DATE_KEYS = (
    "effectiveDateTime",
    "effectiveInstant",
    "onsetDateTime",
    "performedDateTime",
    "authoredOn",
    "recordedDate",
    "occurrenceDateTime",
    "issued",
    "date",
    "created",
)
_PERIOD_KEYS = ("effectivePeriod", "period", "performedPeriod", "onsetPeriod")
_CODE_KEYS = ("code", "vaccineCode", "medicationCodeableConcept", "type")


def patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the Patient the resource is about, when it names one by a relative reference."""
    if resource.get("resourceType") == "Patient":
        value = resource.get("id")
        return value if isinstance(value, str) else None
    for key in _PATIENT_KEYS:
        ref = resource.get(key)
        if isinstance(ref, dict):
            text = ref.get("reference")
            if isinstance(text, str) and "Patient/" in text:
                return text.rsplit("Patient/", 1)[1].split("/", 1)[0]
    return None


def codes_of(resource: dict[str, Any]) -> list[str]:
    """`system|code` and bare `code` of the resource's main codings (for token search)."""
    found: set[str] = set()
    for key in _CODE_KEYS:
        concept = resource.get(key)
        if concept is None:
            continue
        for item in concept if isinstance(concept, list) else (concept,):
            if isinstance(item, dict):
                _add_codings(item.get("coding") or (), found)
    return sorted(found)


def _add_codings(codings: Any, found: set[str]) -> None:
    for coding in codings:
        if isinstance(coding, dict):
            code = coding.get("code")
            if isinstance(code, str):
                system = coding.get("system")
                found.add(f"{system if isinstance(system, str) else ''}|{code}")
                found.add(code)


def date_of(resource: dict[str, Any]) -> str | None:
    for key in _DATE_KEYS:
        value = resource.get(key)
        if isinstance(value, str):
            return value
    for key in _PERIOD_KEYS:
        period = resource.get(key)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return str(period["start"])
    return None


def content_sha256(resource: dict[str, Any]) -> str:
    """A digest of the resource's content, ignoring `meta` (servers restamp it)."""
    content = {k: v for k, v in resource.items() if k != "meta"} if "meta" in resource else resource
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def digest_and_json(resource: dict[str, Any]) -> tuple[str, bytes]:
    """`content_sha256(resource)` and the resource as JSON, from one serialization: the digested
    form (keys sorted, `meta` left out) with `meta` appended is the whole resource (key order is
    not content in JSON)."""
    if "meta" not in resource:
        content = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(content).hexdigest(), content
    rest = resource.copy()
    meta = orjson.dumps(rest.pop("meta"))
    content = orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)
    separator = b"," if len(content) > 2 else b""  # `{}`: a resource of `meta` alone
    whole = b"".join((content[:-1], separator, b'"meta":', meta, b"}"))
    return hashlib.sha256(content).hexdigest(), whole
