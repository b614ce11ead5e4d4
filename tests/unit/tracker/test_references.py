from __future__ import annotations

from ehiconnect.tracker.sinks.fhir_server import build_bundle, failed_entries
from ehiconnect.tracker.sinks.references import IdMapper, rewrite_resource


def test_numeric_and_invalid_ids_are_mapped_the_same_way_everywhere() -> None:
    mapper = IdMapper()
    assert mapper.target_id("Practitioner", "1001") == "ehi-1001"
    assert mapper.target_id("Observation", "obs-1") == "obs-1"
    long_id = "x" * 80
    mapped = mapper.target_id("Observation", long_id)
    assert len(mapped) <= 64
    assert mapped == mapper.target_id("Observation", long_id)
    assert mapper.target_id("Observation", "a/b") != mapper.target_id("Observation", "a_b")


def test_references_follow_their_targets() -> None:
    resource = {
        "resourceType": "DocumentReference",
        "id": "7",
        "subject": {"reference": "Patient/p1"},
        "author": [{"reference": "Practitioner/1001/_history/3"}],
        "content": [{"attachment": {"url": "Binary/2002", "contentType": "text/plain"}}],
        "contained": [{"resourceType": "Organization", "id": "org"}],
        "custodian": {"reference": "#org"},
        "relatesTo": [{"target": {"reference": "https://other.example/fhir/DocumentReference/1"}}],
    }
    out = rewrite_resource(resource, IdMapper())
    assert out["id"] == "ehi-7"
    assert out["subject"] == {"reference": "Patient/p1"}
    assert out["author"] == [{"reference": "Practitioner/ehi-1001"}]
    assert out["content"][0]["attachment"]["url"] == "Binary/ehi-2002"
    assert out["custodian"] == {"reference": "#org"}
    assert out["relatesTo"] == resource["relatesTo"]
    assert resource["id"] == "7"  # the input is not changed


def test_bundle_puts_each_resource_at_its_mapped_id() -> None:
    bundle = build_bundle(
        [{"resourceType": "Binary", "id": "5", "contentType": "text/plain", "data": "aGk="}],
        IdMapper(prefix="src-"),
        "transaction",
    )
    assert bundle["type"] == "transaction"
    entry = bundle["entry"][0]
    assert entry["request"] == {"method": "PUT", "url": "Binary/src-5"}
    assert entry["resource"]["id"] == "src-5"
    assert entry["resource"]["data"] == "aGk="


def test_failed_batch_entries_are_reported() -> None:
    response = {
        "entry": [
            {"response": {"status": "200 OK"}},
            {"response": {"status": "201 Created"}},
            {"response": {"status": "400 Bad Request"}},
        ]
    }
    assert failed_entries(response) == ["400 Bad Request"]
