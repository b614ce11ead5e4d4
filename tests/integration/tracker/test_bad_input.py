"""Bad and hostile input to the tracker answers a 4xx in the route's shape, never a 500.

The JSON routes answer the envelope, the /fhir routes an OperationOutcome; nothing answers
text/plain. NUL characters (which PostgreSQL cannot store) are refused where the caller can fix
them and kept as U+FFFD in an authentic signed webhook.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker import receiver as receiver_module
from ehiconnect.tracker.http_errors import EXCEPTION_HANDLERS
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import (
    TrackerConsent,
    TrackerFhirResource,
    TrackerWebhook,
    TrackerWidgetEvent,
)
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.sinks.fhir_store import FhirStoreSink
from tests.integration.tracker.conftest import FHIR_AUTH, drain
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import count, forward, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson

FHIR_JSON = "application/fhir+json"


def _envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["error"] == code
    assert body["error_description"]
    return dict(body)


def _outcome(response: httpx.Response, status: int, issue_code: str) -> str:
    """The OperationOutcome's diagnostics, after checking its status, type and issue code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error"
    assert issue["code"] == issue_code
    return str(issue["diagnostics"])


# --- NUL characters (issue #11, item 3) ---------------------------------------------------------


async def test_signed_webhook_with_nul_is_accepted_and_processed_with_replacement_characters(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    task_id = platform.task_for(connection_id).task_id
    data = {
        "org_connection_id": connection_id,
        "task_id": task_id,
        "failure_reason": "scope_patient_missing",
        "failure_description": "the portal said: no\u0000patient",
        "note\u0000": "a key with a NUL",
    }

    with caplog.at_level(logging.WARNING, logger="ehiconnect.tracker"):
        response = platform.send_webhook(
            f"{receiver.url}/webhooks", "patient.ehi_export_failed", data, msg_id="msg_nul"
        )
    await drain(tracker)

    assert response.status_code == 200, response.text  # authentic: acknowledged, not retried
    assert response.json()["data"]["duplicate"] is False
    async with tracker.database.transaction() as session:
        stored = await session.get(TrackerWebhook, "msg_nul")
    assert stored is not None
    assert stored.payload["data"]["failure_description"] == "the portal said: no\ufffdpatient"
    assert stored.payload["data"]["note\ufffd"] == "a key with a NUL"
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.FAILED  # the event was processed like any other
    assert job.failure_reason == "scope_patient_missing"
    assert job.failure_description == "the portal said: no\ufffdpatient"
    replaced = [r for r in caplog.records if "NUL" in r.getMessage()]
    assert [getattr(r, "count", None) for r in replaced] == [2]
    assert all("portal said" not in r.getMessage() for r in caplog.records)


def test_stitch_event_with_nul_is_refused_naming_the_field(receiver: ThreadedServer) -> None:
    in_external_id = widget_complete("c-1", external_id="user\u000042")
    in_account = widget_complete("c-2")
    in_account["data"][0]["brand_id"] = "brand\u0000x"

    first = _envelope(forward(receiver, in_external_id), 400, "invalid_event")
    second = _envelope(forward(receiver, in_account), 400, "invalid_event")

    assert first["error_description"].startswith("external_id contains a NUL character")
    assert second["error_description"].startswith("data[0].brand_id contains a NUL character")


def test_stitch_event_with_nul_inside_its_json_string_data_is_refused(
    receiver: ThreadedServer,
) -> None:
    # The widget's CustomEvent carries `data` as a JSON string; the NUL is inside that string.
    event = widget_complete("c-3")
    event["data"] = '[{"org_connection_id": "c-3", "external_id": "x\\u0000"}]'

    body = _envelope(forward(receiver, event), 400, "invalid_event")

    assert body["error_description"].startswith("data[0].external_id contains a NUL character")


async def test_refused_stitch_event_records_nothing(
    receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    assert forward(receiver, widget_complete("c-4", external_id="\u0000")).status_code == 400

    assert await count(tracker, TrackerWidgetEvent) == 0
    assert await count(tracker, TrackerConsent) == 0


async def test_stitch_event_with_an_unreadable_timestamp_is_recorded_without_it(
    receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    response = forward(receiver, {**widget_complete("c-5"), "date": 1e20})

    assert response.status_code == 202, response.text
    async with tracker.database.transaction() as session:
        consent = await session.scalar(
            select(TrackerConsent).where(TrackerConsent.org_connection_id == "c-5")
        )
    assert consent is not None
    assert consent.event_at is None


async def test_export_with_nul_in_a_resource_is_ingested_into_the_fhir_store(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    record = patient_record(observations=2)
    record[-1]["note"] = [{"text": "typed with a stray\u0000byte"}]
    data = platform.complete(platform.task_for(connection_id).task_id, to_ndjson(record))

    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, (job.failed_step, job.failure_description)
    async with tracker.database.transaction() as session:
        row = await session.get(TrackerFhirResource, ("Observation", record[-1]["id"]))
    assert row is not None
    assert row.body["note"][0]["text"] == "typed with a stray\ufffdbyte"


async def test_fhir_store_keeps_a_resource_with_nul_unchanged_on_a_rerun(
    tracker: TrackerRuntime,
) -> None:
    sink = FhirStoreSink(tracker.database, tracker.clock)
    resource = {"resourceType": "Patient", "id": "p-nul\u0000", "name": [{"text": "A\u0000B"}]}

    await sink.write_batch([resource], batch_key="a")
    await sink.write_batch([resource], batch_key="a")

    async with tracker.database.transaction() as session:
        row = await session.scalar(
            select(TrackerFhirResource).where(TrackerFhirResource.resource_id == "p-nul\ufffd")
        )
    assert row is not None
    assert row.version == 1
    assert row.body["name"][0]["text"] == "A\ufffdB"


# --- The FHIR API's answers (item 6) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("_offset=99999999999999999999", "_offset"),
        ("_offset=2147483648", "_offset"),
        ("_offset=-1", "_offset"),
        ("_count=abc", "_count"),
        ("_count=-5", "_count"),
        ("_count=1_0", "_count"),
    ],
)
def test_fhir_integer_parameters_out_of_range_are_400_saying_the_range(
    receiver: ThreadedServer, query: str, named: str
) -> None:
    response = httpx.get(f"{receiver.url}/fhir/Observation?{query}", headers=FHIR_AUTH, timeout=10)

    diagnostics = _outcome(response, 400, "invalid")
    assert diagnostics == f"{named} must be a whole number from 0 to 2147483647"


async def test_fhir_paging_at_the_edges_of_the_range(
    receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    await FhirStoreSink(tracker.database, tracker.clock).write_batch(
        patient_record("p1", observations=3), batch_key="p1"
    )
    url = f"{receiver.url}/fhir/Observation"

    far = httpx.get(url, params={"_offset": "2147483647"}, headers=FHIR_AUTH, timeout=10)
    many = httpx.get(url, params={"_count": "2147483647"}, headers=FHIR_AUTH, timeout=10)

    assert far.status_code == 200
    assert far.json()["total"] == 3
    assert far.json()["entry"] == []
    assert many.status_code == 200
    assert len(many.json()["entry"]) == 3  # a _count above the page limit is served capped


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Observation?patient=p1%00",
        "/fhir/Observation?subject=Patient/%00",
        "/fhir/Observation?code=%00",
        "/fhir/Observation?date=ge2025%00",
        "/fhir/Observation?code=a%0Ab",
        "/fhir/Observation/o1%00",
        "/fhir/Foo%00",
    ],
)
def test_fhir_parameters_with_nul_are_400(receiver: ThreadedServer, path: str) -> None:
    # Refused by the app's URL guard or by the route itself (tests/unit/tracker/test_fhir_query.py
    # checks the route's own refusal names the parameter): either way a FHIR 400.
    response = httpx.get(f"{receiver.url}{path}", headers=FHIR_AUTH, timeout=10)

    assert "control character" in _outcome(response, 400, "invalid")


@pytest.mark.parametrize("path", ["/fhir/Observatoin", "/fhir/observation/o1", "/fhir/Foo%20"])
def test_unknown_fhir_resource_type_is_404(receiver: ThreadedServer, path: str) -> None:
    response = httpx.get(f"{receiver.url}{path}", headers=FHIR_AUTH, timeout=10)

    assert "is not a FHIR R4 resource type" in _outcome(response, 404, "not-supported")


def test_missing_fhir_resource_is_404_outcome(receiver: ThreadedServer) -> None:
    response = httpx.get(f"{receiver.url}/fhir/Observation/none", headers=FHIR_AUTH, timeout=10)

    assert "is not in the tracker's FHIR store" in _outcome(response, 404, "not-found")


# --- Unknown paths and wrong methods (item 6) ---------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/nope", "/webhooks/extra", "/stitch-events/1"])
def test_unknown_path_is_404_envelope(receiver: ThreadedServer, path: str) -> None:
    _envelope(httpx.get(f"{receiver.url}{path}", timeout=10), 404, "not_found")


def test_unknown_fhir_path_is_404_outcome(receiver: ThreadedServer) -> None:
    for path in ("/fhir", "/fhir/Observation/o1/_history/2"):
        response = httpx.get(f"{receiver.url}{path}", headers=FHIR_AUTH, timeout=10)
        _outcome(response, 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/webhooks", "POST"),
        ("PUT", "/stitch-events", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_envelope_with_allow(
    receiver: ThreadedServer, method: str, path: str, allow: str
) -> None:
    response = httpx.request(method, f"{receiver.url}{path}", timeout=10)

    _envelope(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))


def test_wrong_method_on_fhir_is_405_outcome_with_allow(receiver: ThreadedServer) -> None:
    response = httpx.delete(f"{receiver.url}/fhir/Observation/o1", headers=FHIR_AUTH, timeout=10)

    _outcome(response, 405, "not-supported")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


# --- Unexpected failures (item 6) ---------------------------------------------------------------


def test_unexpected_failure_answers_500_in_the_routes_shape_and_logs_no_message(
    receiver: ThreadedServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("value Jane Doe 1970-01-01 not stored")

    monkeypatch.setattr(receiver_module, "search", broken)
    monkeypatch.setattr(receiver_module, "remember_widget_event", broken)
    with httpx.Client(timeout=10) as client, caplog.at_level(logging.ERROR):
        fhir = client.get(f"{receiver.url}/fhir/Observation", headers=FHIR_AUTH)
        stitch = forward(receiver, widget_complete("c-6"))
        after = client.get(f"{receiver.url}/healthz")  # the same connection still serves

    assert "retry later" in _outcome(fhir, 500, "exception")
    _envelope(stitch, 500, "internal_error")
    assert after.status_code == 200
    failures = [r for r in caplog.records if r.getMessage() == "tracker request failed"]
    assert [(getattr(r, "route", None), getattr(r, "error_type", None)) for r in failures] == [
        ("fhir_search", "RuntimeError"),
        ("stitch_events", "RuntimeError"),
    ]
    assert "Jane Doe" not in caplog.text


def test_failure_outside_a_route_answers_500_envelope(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crash(request: Request) -> Response:
        raise RuntimeError("Jane Doe")

    app = Starlette(routes=[Route("/crash", crash)], exception_handlers=EXCEPTION_HANDLERS)
    with serve_in_thread(app) as server, caplog.at_level(logging.ERROR):
        response = httpx.get(f"{server.url}/crash", timeout=10)

    _envelope(response, 500, "internal_error")
    logged = [r for r in caplog.records if r.getMessage() == "tracker request failed"]
    assert [getattr(r, "error_type", None) for r in logged] == ["RuntimeError"]
    assert all("Jane Doe" not in r.getMessage() for r in logged)
