from __future__ import annotations

import orjson

from ehiconnect.tracker.notify import (
    DEFAULT_FAILURE_TEXT,
    MessageTemplate,
    Notice,
    callback_payload,
    render,
)
from ehiconnect.tracker.sinks.fields import (
    codes_of,
    content_sha256,
    date_of,
    digest_and_json,
    patient_of,
)


def _notice(**changes: object) -> Notice:
    base = {
        "outcome": "collection_finished",
        "job_id": "j1",
        "org_connection_id": "c1",
        "external_id": "user-42",
        "health_system": "Harbor Health",
        "total_resources": 4989,
    }
    return Notice(**{**base, **changes})  # type: ignore[arg-type]


def test_finished_message_names_the_health_system_and_count() -> None:
    subject, body = render(_notice())
    assert subject == "Your records from Harbor Health are ready"
    assert "4989 items" in body


def test_failure_message_says_what_to_do_for_the_reason() -> None:
    _, body = render(_notice(outcome="collection_failed", failure_reason="scope_patient_missing"))
    assert "allow access to your health record" in body
    _, unknown = render(_notice(outcome="collection_failed", failure_reason="new_reason"))
    assert DEFAULT_FAILURE_TEXT in unknown


def test_templates_are_data() -> None:
    custom = {"collection_finished": MessageTemplate("Done: $health_system", "$total_resources")}
    assert render(_notice(), custom) == ("Done: Harbor Health", "4989")


def test_callback_payload_carries_no_health_data() -> None:
    payload = callback_payload(_notice())
    assert payload == {
        "type": "tracker.collection_finished",
        "job_id": "j1",
        "org_connection_id": "c1",
        "external_id": "user-42",
        "total_resources": 4989,
        "failure_reason": None,
    }


def test_search_fields() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "effectivePeriod": {"start": "2025-01-02"},
    }
    assert patient_of(obs) == "p1"
    assert patient_of({"resourceType": "Patient", "id": "p9"}) == "p9"
    assert codes_of(obs) == ["8867-4", "http://loinc.org|8867-4"]
    assert date_of(obs) == "2025-01-02"
    restamped = {**obs, "meta": {"lastUpdated": "2026-01-01"}}
    assert content_sha256(obs) == content_sha256(restamped)
    assert content_sha256(obs) != content_sha256({**obs, "status": "amended"})


def test_digest_and_json_is_the_digest_and_the_whole_resource() -> None:
    """The FHIR store digests and stores from one serialization: the digest is the same as
    `content_sha256` (what rows already stored were keyed by) and the JSON is the resource."""
    resources = [
        {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}},
        {"meta": {"versionId": "2", "tag": [{"code": "z"}]}, "resourceType": "Patient", "id": "p"},
        {"meta": None, "id": "b", "resourceType": "Basic"},
        {"meta": {"lastUpdated": "2026-01-01"}},  # nothing but meta: a foreign file's oddity
        {
            "id": "\u00e9\u0000",
            "resourceType": "Basic",
            "extension": [{"valueString": "\U0001f600"}],
        },
    ]
    for resource in resources:
        digest, body = digest_and_json(resource)
        assert digest == content_sha256(resource)
        assert orjson.loads(body) == resource
    reordered = dict(reversed(list(resources[1].items())))
    assert digest_and_json(reordered)[0] == digest_and_json(resources[1])[0]
