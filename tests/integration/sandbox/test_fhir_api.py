"""FHIR R4 behaviour per health system: metadata, read, search, $everything, Binary, errors."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest

from ehiconnect.sandbox.generator import attachment_sha256, expected_attachments
from tests.integration.sandbox.smart_app import SmartApp


@pytest.fixture
def harbor_tokens(harbor: SmartApp) -> dict[str, Any]:
    return harbor.connect("tina")


@pytest.fixture
def cedar_tokens(cedar: SmartApp) -> dict[str, Any]:
    return cedar.connect("theo")


def _outcome(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def test_metadata_has_smart_security_and_everything_only_where_supported(
    harbor: SmartApp, cedar: SmartApp
) -> None:
    for app, has_everything in ((harbor, True), (cedar, False)):
        statement = app.http.get(f"{app.fhir_base}/metadata").json()
        assert statement["fhirVersion"] == "4.0.1"
        rest = statement["rest"][0]
        uris = {e["url"]: e["valueUri"] for e in rest["security"]["extension"][0]["extension"]}
        assert uris["token"] == app.token_url
        patient = next(r for r in rest["resource"] if r["type"] == "Patient")
        assert ("operation" in patient) is has_everything


def test_read_has_etag_and_honours_if_none_match(
    harbor: SmartApp, harbor_tokens: dict[str, Any]
) -> None:
    path = f"Patient/{harbor_tokens['patient']}"
    first = harbor.get(harbor_tokens["access_token"], path)
    assert first.headers["etag"] == 'W/"1"'
    assert "GMT" in first.headers["last-modified"]
    assert first.json()["meta"]["lastUpdated"]
    again = harbor.http.get(
        f"{harbor.fhir_base}/{path}",
        headers={
            "Authorization": f"Bearer {harbor_tokens['access_token']}",
            "If-None-Match": 'W/"1"',
        },
    )
    assert again.status_code == 304


def test_epic_like_needs_observation_category_and_omits_last_updated(
    cedar: SmartApp, cedar_tokens: dict[str, Any]
) -> None:
    token, patient = cedar_tokens["access_token"], cedar_tokens["patient"]
    message = _outcome(cedar.get(token, "Observation", patient=patient), 400)
    assert "category" in message
    labs = cedar.get(token, "Observation", patient=patient, category="laboratory").json()
    assert labs["total"] > 0
    assert all(
        e["resource"]["category"][0]["coding"][0]["code"] == "laboratory" for e in labs["entry"]
    )
    assert "lastUpdated" not in labs["entry"][0]["resource"]["meta"]
    docs = cedar.get(token, "DocumentReference", patient=patient).json()
    assert docs["entry"][0]["resource"]["content"][0]["attachment"]["url"].startswith("Binary/")
    message = _outcome(cedar.get(token, f"Patient/{patient}/$everything"), 404)
    assert "$everything" in message


def test_full_featured_serves_absolute_attachment_urls(
    harbor: SmartApp, harbor_tokens: dict[str, Any]
) -> None:
    docs = harbor.get(
        harbor_tokens["access_token"], "DocumentReference", patient=harbor_tokens["patient"]
    ).json()
    url = docs["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    assert url.startswith(f"{harbor.fhir_base}/Binary/")


def test_binary_is_raw_by_default_and_fhir_json_on_request(
    harbor: SmartApp, harbor_tokens: dict[str, Any]
) -> None:
    spec = next(s for s in expected_attachments("harbor", "tina") if s.kind == "pdf")
    token = harbor_tokens["access_token"]
    raw = harbor.get(token, f"Binary/{spec.binary_id}")
    assert raw.headers["content-type"] == "application/pdf"
    assert int(raw.headers["content-length"]) == spec.size
    assert hashlib.sha256(raw.content).hexdigest() == attachment_sha256(spec)
    as_json = harbor.http.get(
        f"{harbor.fhir_base}/Binary/{spec.binary_id}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
    )
    body = as_json.json()
    assert body["resourceType"] == "Binary"
    assert body["contentType"] == "application/pdf"
    assert base64.b64decode(body["data"]) == raw.content


def test_every_attachment_is_the_same_bytes_and_headers_on_every_download(
    harbor: SmartApp, harbor_tokens: dict[str, Any]
) -> None:
    token = harbor_tokens["access_token"]
    specs = list(expected_attachments("harbor", "tina"))
    assert {s.kind for s in specs} >= {"note", "pdf", "png"}
    for spec in specs:
        first, again = (harbor.get(token, f"Binary/{spec.binary_id}") for _ in range(2))
        for response in (first, again):
            assert response.status_code == 200
            assert response.headers["content-type"] == spec.content_type
            assert int(response.headers["content-length"]) == spec.size
            assert response.headers["etag"] == f'"{spec.binary_id}-{spec.size}"'
            assert hashlib.sha256(response.content).hexdigest() == attachment_sha256(spec)
        part = harbor.http.get(
            f"{harbor.fhir_base}/Binary/{spec.binary_id}",
            headers={"Authorization": f"Bearer {token}", "Range": "bytes=3-9"},
        )
        assert part.status_code == 206
        assert part.headers["content-length"] == "7"
        assert part.content == first.content[3:10]


def test_search_pages_are_stable_and_tokens_cannot_be_moved(
    harbor: SmartApp, harbor_tokens: dict[str, Any]
) -> None:
    token, patient = harbor_tokens["access_token"], harbor_tokens["patient"]
    first = harbor.get(token, "Observation", patient=patient, _count=5).json()
    next_url = next(x["url"] for x in first["link"] if x["relation"] == "next")
    page_a = harbor.get(token, next_url).json()
    page_b = harbor.get(token, next_url).json()
    assert [e["resource"]["id"] for e in page_a["entry"]] == [
        e["resource"]["id"] for e in page_b["entry"]
    ]
    assert {e["resource"]["id"] for e in page_a["entry"]}.isdisjoint(
        e["resource"]["id"] for e in first["entry"]
    )
    moved = next_url.replace("Observation?", "Condition?")
    assert "different search" in _outcome(harbor.get(token, moved), 400)


def test_another_patients_data_is_refused(harbor: SmartApp, harbor_tokens: dict[str, Any]) -> None:
    token = harbor_tokens["access_token"]
    other = harbor.connect("amy")["patient"]
    _outcome(harbor.get(token, "Condition", patient=other), 403)
    _outcome(harbor.get(token, f"Patient/{other}"), 404)
    _outcome(harbor.get(token, f"Patient/{other}/$everything"), 403)


def test_errors_are_operation_outcomes(harbor: SmartApp, harbor_tokens: dict[str, Any]) -> None:
    token = harbor_tokens["access_token"]
    assert "not known" in _outcome(harbor.get(token, "Condition/nope"), 404)
    assert "not served" in _outcome(harbor.get(token, "Questionnaire", patient="x"), 404)
    assert "_id" in _outcome(harbor.get(token, "Practitioner"), 400)
    assert "whole number" in _outcome(harbor.get(token, "Condition", _count="many"), 400)
    assert "Bearer" in _outcome(harbor.http.get(f"{harbor.fhir_base}/Condition"), 401)
    assert "try: harbor" in _outcome(
        harbor.http.get(f"{harbor.server_url}/nowhere/fhir/metadata"), 404
    )


def test_everything_is_limited_to_granted_types(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina", "launch/patient patient/Patient.rs patient/Condition.rs")
    bundle = harbor.get(
        tokens["access_token"], f"Patient/{tokens['patient']}/$everything", _count=500
    ).json()
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Patient", "Condition"}


def test_the_logo_and_catalog_urls_resolve(harbor: SmartApp) -> None:
    from ehiconnect.sandbox.catalog import sandbox_catalog

    for entry in sandbox_catalog(harbor.server_url):
        assert harbor.http.get(entry["brand"]["logo"]).headers["content-type"] == "image/svg+xml"
        config = harbor.http.get(entry["endpoint"]["smart_configuration_url"]).json()
        assert config["token_endpoint"] == entry["endpoint"]["token_endpoint"]
