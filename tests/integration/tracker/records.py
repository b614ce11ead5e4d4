"""Small synthetic FHIR records for tracker tests, as NDJSON bytes."""

from __future__ import annotations

import base64
from typing import Any

import orjson

LOINC = "http://loinc.org"


def patient_record(patient_id: str = "p1", observations: int = 30) -> list[dict[str, Any]]:
    """A patient, a numbered practitioner, Observations, a Binary and its DocumentReference."""
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": patient_id, "name": [{"family": "Test"}]},
        {"resourceType": "Practitioner", "id": "1001", "name": [{"family": "Doc"}]},
        {
            "resourceType": "Binary",
            "id": "2002",
            "contentType": "text/plain",
            "data": base64.b64encode(b"clinical note").decode(),
        },
        {
            "resourceType": "DocumentReference",
            "id": "doc-1",
            "status": "current",
            "subject": {"reference": f"Patient/{patient_id}"},
            "author": [{"reference": "Practitioner/1001"}],
            "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/2002"}}],
        },
    ]
    for n in range(observations):
        code = "8867-4" if n % 2 else "2339-0"
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"obs-{patient_id}-{n}",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "performer": [{"reference": "Practitioner/1001"}],
                "effectiveDateTime": f"2025-{(n % 12) + 1:02d}-01T08:00:00Z",
                "valueQuantity": {"value": 60 + n, "unit": "/min"},
            }
        )
    return resources


def to_ndjson(resources: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)
