"""Fault injection, switched at run time through the admin endpoint."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
import pytest

from ehiconnect.sandbox.generator import expected_attachments
from ehiconnect.sandbox.state import SandboxState
from tests.integration.sandbox.smart_app import SmartApp


@pytest.fixture
def tokens(harbor: SmartApp) -> dict[str, Any]:
    return harbor.connect("tina")


def put_faults(http: httpx.Client, slug: str, **faults: Any) -> None:
    response = http.put(f"/_admin/{slug}/faults", json=faults)
    assert response.status_code == 200, response.text


def test_admin_endpoint_sets_reads_and_resets_faults(http: httpx.Client) -> None:
    put_faults(http, "harbor", latency_ms=5, rate_limit_share=0.5)
    assert http.get("/_admin/harbor/faults").json()["rate_limit_share"] == 0.5
    assert http.get("/_admin/cedar/faults").json()["rate_limit_share"] == 0.0
    assert http.delete("/_admin/harbor/faults").json()["rate_limit_share"] == 0.0


def test_admin_endpoint_refuses_unknown_fields_and_systems(http: httpx.Client) -> None:
    bad = http.put("/_admin/harbor/faults", json={"rate_limit_share": 2})
    assert bad.status_code == 422
    assert "rate_limit_share" in bad.json()["error_description"]
    typo = http.put("/_admin/harbor/faults", json={"rate_limit": 1})
    assert typo.status_code == 422
    assert "rate_limit_share" in typo.json()["fields"]
    assert http.put("/_admin/nowhere/faults", json={}).status_code == 404


def test_rate_limit_answers_429_with_retry_after(
    harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client
) -> None:
    put_faults(http, "harbor", rate_limit_share=1.0, retry_after_s=7)
    response = harbor.get(tokens["access_token"], "Condition", patient=tokens["patient"])
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["resourceType"] == "OperationOutcome"


def test_server_errors_use_the_configured_statuses(
    harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client
) -> None:
    put_faults(http, "harbor", server_error_share=1.0, server_error_statuses=[502, 503])
    statuses = {
        harbor.get(tokens["access_token"], "Condition", patient=tokens["patient"]).status_code
        for _ in range(12)
    }
    assert statuses == {502, 503}


def test_latency_delays_each_request(
    harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client
) -> None:
    put_faults(http, "harbor", latency_ms=300)
    started = time.perf_counter()
    assert harbor.get(tokens["access_token"], "metadata").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_a_dropped_connection_truncates_the_body(
    harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client
) -> None:
    put_faults(http, "harbor", drop_connection_share=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        harbor.get(tokens["access_token"], "Observation", patient=tokens["patient"])
    spec = next(iter(expected_attachments("harbor", "tina")))
    with pytest.raises(httpx.RemoteProtocolError):
        harbor.get(tokens["access_token"], f"Binary/{spec.binary_id}")
    http.delete("/_admin/harbor/faults")
    assert harbor.get(tokens["access_token"], f"Binary/{spec.binary_id}").status_code == 200


def test_a_malformed_page_is_not_json(
    harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client
) -> None:
    put_faults(http, "harbor", malformed_json_share=1.0)
    response = harbor.get(tokens["access_token"], "Observation", patient=tokens["patient"])
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_access_tokens_expire_after_n_requests(
    harbor: SmartApp, tokens: dict[str, Any], sandbox_state: SandboxState
) -> None:
    from ehiconnect.sandbox.config import Faults

    sandbox_state.set_faults("harbor", Faults(expire_access_tokens_after=2))
    path = f"Patient/{tokens['patient']}"
    assert [harbor.get(tokens["access_token"], path).status_code for _ in range(3)] == [
        200,
        200,
        401,
    ]
    fresh = harbor.refresh(tokens["refresh_token"]).json()
    assert harbor.get(fresh["access_token"], path).status_code == 200


def test_a_slow_binary_server(harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client) -> None:
    # The PDF (about 350 kB): big enough that the throttle, not chunk rounding, sets the pace.
    spec = next(s for s in expected_attachments("harbor", "tina") if s.kind == "pdf")
    put_faults(http, "harbor", binary_first_byte_delay_ms=200, binary_bytes_per_s=500_000)
    started = time.perf_counter()
    response = harbor.get(tokens["access_token"], f"Binary/{spec.binary_id}")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.content) == spec.size
    # Lower bounds only: the server waits at least this long, however fast the machine.
    assert elapsed >= 0.2 + spec.size / 500_000 * 0.8


def test_a_dropped_binary_download_resumes_with_range(
    harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client
) -> None:
    from ehiconnect.sandbox.generator import attachment_sha256

    spec = next(s for s in expected_attachments("harbor", "tina") if s.kind == "pdf")
    url = f"{harbor.fhir_base}/Binary/{spec.binary_id}"
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    put_faults(http, "harbor", drop_connection_share=1.0)
    received = bytearray()

    def download() -> None:
        with http.stream("GET", url, headers=auth) as response:
            assert response.headers["accept-ranges"] == "bytes"
            for chunk in response.iter_raw():
                received.extend(chunk)

    with pytest.raises(httpx.RemoteProtocolError):
        download()
    assert 0 < len(received) < spec.size
    http.delete("/_admin/harbor/faults")
    rest = http.get(url, headers={**auth, "Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {len(received)}-{spec.size - 1}/{spec.size}"
    whole = bytes(received) + rest.content
    assert hashlib.sha256(whole).hexdigest() == attachment_sha256(spec)
    past_end = http.get(url, headers={**auth, "Range": f"bytes={spec.size}-"})
    assert past_end.status_code == 416


def test_token_endpoint_faults_are_opt_in(
    harbor: SmartApp, tokens: dict[str, Any], http: httpx.Client
) -> None:
    put_faults(http, "harbor", rate_limit_share=1.0, retry_after_s=3)
    assert harbor.refresh(tokens["refresh_token"]).status_code == 200
    put_faults(http, "harbor", rate_limit_share=1.0, retry_after_s=3, token_endpoint_faults=True)
    response = harbor.post_token("token", {"grant_type": "refresh_token", "refresh_token": "x"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
