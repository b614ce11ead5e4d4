"""The served OpenAPI document tells a client how to authenticate and what errors look like
(issue #11, item 14), and is a valid OpenAPI document.

Which routes are private is not taken from the document: every operation is called without
credentials, and those that answer 401 must declare the security schemes (and those that declare
them must answer 401).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from tests.integration.conftest import make_org

pytestmark = pytest.mark.integration

ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"
SECURITY = [{"basicAuth": []}, {"bearerAuth": []}]
# The FHIR Bulk Data view answers errors as OperationOutcome resources, not the envelope.
FHIR_PREFIX = "/v1/fhir/"


@pytest.fixture
def document(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/openapi.json")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in ("get", "post", "put", "patch", "delete", "head")
    ]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_the_security_schemes_and_the_envelope_are_components(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["basicAuth"]["type"] == "http"
    assert schemes["basicAuth"]["scheme"] == "basic"
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["properties"]) == {"success", "error", "error_description"}
    assert {"error", "error_description"} <= set(envelope["required"])


def test_every_route_that_needs_a_key_declares_basic_and_bearer(
    http: httpx.Client, document: dict[str, Any]
) -> None:
    http.headers["connection"] = "close"
    private, undeclared, overdeclared = set(), [], []
    for method, path, operation in _operations(document):
        url = re.sub(r"\{[^}]+\}", "0", path)
        answer = http.request(method.upper(), url, follow_redirects=False)
        assert answer.status_code < 500, f"{method} {path}: {answer.status_code} {answer.text}"
        declared = operation.get("security") == SECURITY
        if answer.status_code == 401:
            private.add(f"{method.upper()} {path}")
            if not declared:
                undeclared.append(f"{method.upper()} {path}")
        elif declared:
            overdeclared.append(f"{method.upper()} {path}: {answer.status_code}")
    assert not undeclared, "\n".join(undeclared)
    assert not overdeclared, "\n".join(overdeclared)
    assert {
        "GET /v1/bridge/org_connection/{org_connection_id}",
        "DELETE /v1/bridge/org_connection/{org_connection_id}",
        "POST /v1/bridge/fhir/ehi-export",
        "GET /v1/bridge/fhir/ehi-export/{task_id}",
        "POST /v1/webhooks/endpoints",
        "GET /v1/webhooks/events",
    } <= private
    assert "GET /v1/bridge/org" not in private


def test_error_responses_are_documented_with_the_envelope(document: dict[str, Any]) -> None:
    problems = []
    for method, path, operation in _operations(document):
        if path.startswith(FHIR_PREFIX):
            continue
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        if operation.get("security") == SECURITY and "401" not in responses:
            problems.append(f"{where}: a private route without 401")
        for status, response in responses.items():
            if not status.startswith("4"):
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if schema is not None and schema != {"$ref": ENVELOPE_REF}:
                problems.append(f"{where} {status}: {schema}")
            if schema is None and "text/html" not in response.get("content", {}):
                problems.append(f"{where} {status}: no schema")
    assert not problems, "\n".join(problems)
    # FastAPI's own 422 shape is never what the API answers.
    assert "HTTPValidationError" not in str(
        [
            op["responses"]
            for _, path, op in _operations(document)
            if not path.startswith(FHIR_PREFIX)
        ]
    )


def test_the_documented_statuses_include_the_shared_set(document: dict[str, Any]) -> None:
    documented = {
        status
        for _, path, operation in _operations(document)
        if not path.startswith(FHIR_PREFIX)
        for status in operation["responses"]
    }
    assert {"400", "401", "403", "404", "409", "413", "422", "429"} <= documented


@pytest.fixture
async def org(runtime: Runtime) -> CreatedOrg:
    return await make_org(runtime)


def test_authentication_behaves_as_before(http: httpx.Client, org: CreatedOrg) -> None:
    keys = org.keys["test"]
    basic = http.get("/v1/webhooks/endpoints", auth=(keys.public_id, keys.private_key))
    bearer = http.get(
        "/v1/webhooks/endpoints", headers={"authorization": f"Bearer {keys.private_key}"}
    )
    assert basic.status_code == bearer.status_code == 200
    # A malformed Basic header is still our 401 envelope with our explanation.
    garbled = http.get("/v1/webhooks/endpoints", headers={"authorization": "Basic %%%"})
    assert garbled.status_code == 401
    assert garbled.json()["error"] == "unauthorized"
    assert "not valid base64" in garbled.json()["error_description"]
    no_colon = base64.b64encode(b"no-colon").decode()
    missing = http.get("/v1/webhooks/endpoints", headers={"authorization": f"Basic {no_colon}"})
    assert missing.status_code == 401
    assert "lack a ':'" in missing.json()["error_description"]
    assert missing.headers["www-authenticate"] == 'Basic realm="ehiconnect"'
