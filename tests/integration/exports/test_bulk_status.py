"""The FHIR Bulk Data view over real HTTP: status, manifest, DELETE, and errors as FHIR."""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any

import httpx

from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.retention import purge_expired_exports
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import drain, start, status

FHIR_JSON = "application/fhir+json"


def bulk(platform: Platform, method: str, task_id: str) -> httpx.Response:
    return httpx.request(
        method, f"{platform.api.url}/v1/fhir/bulkstatus/{task_id}", auth=platform.auth()
    )


def outcome(response: httpx.Response) -> dict[str, Any]:
    """The OperationOutcome a FHIR-side error carries (never the platform's envelope)."""
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"][0]["severity"] == "error"
    assert body["issue"][0]["diagnostics"]
    assert "success" not in body
    return body


async def test_a_finished_export_is_gone_after_delete(platform: Platform, runtime: Runtime) -> None:
    task_id = start(platform, platform.connect("harbor", "tina")["org_connection_id"])
    await drain(runtime)
    done = status(platform, task_id)
    manifest = bulk(platform, "GET", task_id)
    assert manifest.status_code == 200
    assert manifest.json()["output"]
    # Expires is an HTTP-date (RFC 9110 §5.6.7), the moment the compat view reports.
    expires = manifest.headers["expires"]
    assert expires.endswith(" GMT")
    assert email.utils.parsedate_to_datetime(expires) == dt.datetime.fromisoformat(
        done["expires_at"]
    ).replace(microsecond=0)

    assert bulk(platform, "DELETE", task_id).status_code == 202
    for method in ("GET", "GET", "DELETE"):  # the Bulk Data IG: 404 after a delete
        gone = bulk(platform, method, task_id)
        assert gone.status_code == 404, method
        outcome(gone)
    assert status(platform, task_id)["status"] == "deleted"
    link = manifest.json()["extension"]["ehiconnect-file"]["url"]
    file_gone = httpx.get(link, auth=platform.auth())
    assert file_gone.status_code == 410
    assert file_gone.json()["error"] == "gone"  # the compat route keeps the envelope
    assert not list((runtime.settings.data_dir / "exports").rglob("*.jsonl"))
    # A new request crawls afresh instead of handing back the deleted task.
    again = start(platform, status(platform, task_id)["org_connection_id"])
    assert again != task_id


async def test_a_running_export_is_gone_after_delete(platform: Platform, runtime: Runtime) -> None:
    task_id = start(platform, platform.connect("harbor", "tina")["org_connection_id"])
    running = bulk(platform, "GET", task_id)
    assert running.status_code == 202
    assert running.headers["x-progress"] == "queued: 0 resources"
    assert int(running.headers["retry-after"]) > 0

    assert bulk(platform, "DELETE", task_id).status_code == 202
    for method in ("GET", "DELETE", "GET"):
        gone = bulk(platform, method, task_id)
        assert gone.status_code == 404, method  # was 500 "the export is cancelled"
        assert "cancelled" in outcome(gone)["issue"][0]["diagnostics"]
    await drain(runtime)  # the worker finds it cancelled and leaves nothing behind
    assert status(platform, task_id)["status"] == "cancelled"
    assert bulk(platform, "GET", task_id).status_code == 404
    assert not list((runtime.settings.data_dir / "exports").rglob("*.jsonl"))


async def test_failed_and_expired_exports_answer_operation_outcomes(
    platform: Platform, runtime: Runtime, sandbox_state: SandboxState
) -> None:
    sandbox_state.set_faults(
        "harbor", Faults(expire_access_tokens_after=2, refresh_invalid_grant=True)
    )
    failed = start(platform, platform.connect("harbor", "tina")["org_connection_id"])
    await drain(runtime)
    assert status(platform, failed)["status"] == "failed"
    answer = bulk(platform, "GET", failed)
    assert answer.status_code == 500
    [issue] = outcome(answer)["issue"]
    assert issue["details"]["coding"][0]["code"] == "token_refresh_failure"

    sandbox_state.set_faults("harbor", Faults())
    done = start(platform, platform.connect("harbor", "amy")["org_connection_id"])
    await drain(runtime)
    assert status(platform, done)["status"] == "success"
    async with runtime.database.transaction() as session:  # its retention has passed
        task = await session.get(ExportTask, done)
        assert task is not None
        assert task.expires_at is not None
        task.expires_at -= dt.timedelta(days=2)
    assert await purge_expired_exports(runtime.exports) == 1
    expired = bulk(platform, "GET", done)
    assert expired.status_code == 410
    outcome(expired)
    # A client may still delete what it no longer needs; then the task is gone.
    assert bulk(platform, "DELETE", done).status_code == 202
    assert bulk(platform, "GET", done).status_code == 404


async def test_fhir_routes_answer_errors_as_operation_outcomes(platform: Platform) -> None:
    base = f"{platform.api.url}/v1/fhir"
    unknown = bulk(platform, "GET", "0" * 32)
    assert unknown.status_code == 404
    outcome(unknown)
    for odd in ("nope", "g" * 32, "0" * 33):
        assert bulk(platform, "GET", odd).status_code == 404, odd
        outcome(bulk(platform, "DELETE", odd))
    for odd in ("a%00" + "0" * 29, "%00" * 32):  # refused at the edge, never a 500
        refused = bulk(platform, "GET", odd)
        assert refused.status_code == 400, odd
        assert "control character" in outcome(refused)["issue"][0]["diagnostics"]

    anonymous = httpx.get(f"{base}/bulkstatus/{'0' * 32}")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert outcome(anonymous)["issue"][0]["code"] == "forbidden"
    wrong_key = httpx.get(f"{base}/bulkstatus/{'0' * 32}", auth=("public_test_x", "private_test_x"))
    assert wrong_key.status_code == 401
    outcome(wrong_key)

    nowhere = httpx.get(f"{base}/Patient/1", auth=platform.auth())
    assert nowhere.status_code == 404
    outcome(nowhere)
    wrong_method = httpx.post(f"{base}/bulkstatus/{'0' * 32}", auth=platform.auth())
    assert wrong_method.status_code == 405
    assert set(wrong_method.headers["allow"].split(", ")) == {"DELETE", "GET"}
    outcome(wrong_method)

    # The compat routes keep the platform's JSON envelope.
    compat = httpx.get(
        f"{platform.api.url}/v1/bridge/fhir/ehi-export/{'0' * 32}", auth=platform.auth()
    )
    assert compat.status_code == 404
    assert compat.json()["success"] is False
