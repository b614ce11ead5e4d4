"""Tracing over the user's configuration path: one export's spans, as a collector receives them.

The platform is configured the way an operator does it (`EHICONNECT_OTEL__ENDPOINT`); the spans
arrive over OTLP/HTTP at a receiver on loopback and are decoded with `opentelemetry-proto`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ehiconnect import tracing
from ehiconnect.db.models import OrgConnection
from ehiconnect.jobs.worker import run_worker
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer, free_port, serve_in_thread
from tests.integration.consent.conftest import (  # noqa: F401 (fixtures)
    Platform,
    api,
    browser,
    org,
    platform,
    platform_clock,
    sandbox,
    sandbox_app,
    sandbox_state,
)
from tests.integration.exports.support import start, status
from tests.integration.observability.otlp_receiver import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_SERVER,
    STATUS_ERROR,
    OtlpReceiver,
    ReceivedSpan,
)
from tests.integration.webhooks.helpers import add_endpoint
from tests.integration.webhooks.receiver import Receiver

SECRET_IN_QUERY = "s3cret-in-the-query"


@pytest.fixture
def collector() -> Iterator[tuple[OtlpReceiver, ThreadedServer]]:
    receiver = OtlpReceiver()
    with serve_in_thread(receiver) as server:
        yield receiver, server


@pytest.fixture
def settings(
    tmp_path: Path,
    database_url: str,
    sandbox: ThreadedServer,  # noqa: F811
    collector: tuple[OtlpReceiver, ThreadedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    # The operator's way in: the environment, read by Settings like any other value.
    monkeypatch.setenv("EHICONNECT_OTEL__ENDPOINT", collector[1].url)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    settings.api.port = free_port()
    settings.sandbox.base_url = sandbox.url
    # One job at a time: a queue run with wait=False then also runs the jobs that jobs queue
    # (the webhook delivery the export's success queues).
    settings.jobs.concurrency = 1
    yield settings
    tracing.shutdown()  # process-wide: later tests run untraced


@pytest.fixture
def failing_hook() -> Iterator[ThreadedServer]:
    with serve_in_thread(Receiver(default_status=500)) as server:
        yield server


def _status_of(span: ReceivedSpan) -> object:
    return span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))


def _url_of(span: ReceivedSpan) -> object:
    return span.attributes.get("url.full", span.attributes.get("http.url"))


async def test_one_export_traced_from_request_to_webhook(
    platform: Platform,  # noqa: F811
    runtime: Runtime,
    settings: Settings,
    collector: tuple[OtlpReceiver, ThreadedServer],
    failing_hook: ThreadedServer,
) -> None:
    receiver = collector[0]
    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    async with runtime.database.transaction() as session:
        patient_id = await session.scalar(
            select(OrgConnection.source_patient_id).where(
                OrgConnection.org_connection_id == connection_id
            )
        )
    assert patient_id
    hook_url = f"{failing_hook.url}/hooks/acme?token={SECRET_IN_QUERY}"
    await add_endpoint(runtime, platform.org.org_id, hook_url)

    task_id = start(platform, connection_id)
    await run_worker(settings, wait=False)  # the worker's own entry point, as `ehiconnect worker`
    assert status(platform, task_id)["status"] == "success"
    tracing.shutdown()  # flushes every buffered span to the collector
    spans = receiver.spans

    # The API request that asked for the export.
    [request] = [
        s
        for s in spans
        if s.kind == SPAN_KIND_SERVER
        and s.attributes.get("http.route") == "/v1/bridge/fhir/ehi-export"
    ]
    assert _status_of(request) == 200

    # The export: a trace of its own, linked to that request.
    [export] = [s for s in spans if s.name == "export"]
    assert export.attributes["ehiconnect.task_id"] == task_id
    assert export.attributes["ehiconnect.export.outcome"] == "success"
    assert export.attributes["ehiconnect.org_id"] == platform.org.org_id
    assert export.links == [(request.trace_id, request.span_id)]
    assert export.parent_span_id == ""

    # Its phases, in its trace.
    phases = {s.name: s for s in spans if s.parent_span_id == export.span_id}
    for phase in ("discover", "patient", "resources", "hydrate", "package"):
        assert f"export {phase}" in phases, sorted(phases)
        assert phases[f"export {phase}"].attributes["ehiconnect.phase"] == phase

    # FHIR requests: host and status, the resource type, nothing of path or query.
    sandbox_port = int(platform.sandbox.url.rsplit(":", 1)[1])
    fhir = [
        s
        for s in spans
        if s.kind == SPAN_KIND_CLIENT
        and s.trace_id == export.trace_id
        and s.attributes.get("server.port") == sandbox_port
    ]
    assert fhir, "no FHIR request span"
    for span in fhir:
        assert span.attributes["server.address"] == "127.0.0.1"
        assert _url_of(span) == platform.sandbox.url
        assert isinstance(_status_of(span), int)
    # The Patient read goes out with the CapabilityStatement, in the discover phase (#17).
    discover = phases["export discover"].span_id
    [patient_read] = [s for s in fhir if s.parent_span_id == discover and s.name == "GET Patient"]
    assert patient_read.attributes["fhir.resource_type"] == "Patient"
    assert patient_read.name == "GET Patient"
    assert _status_of(patient_read) == 200
    assert {s.attributes.get("fhir.resource_type") for s in fhir} >= {
        "CapabilityStatement",
        "Patient",
        "Binary",
    }

    # The webhook attempt, failed by the receiver, and its HTTP request.
    [attempt] = [
        s
        for s in spans
        if s.name == "webhook attempt"
        and s.attributes["ehiconnect.event_type"] == "patient.ehi_export_success"
    ]
    assert attempt.attributes["ehiconnect.webhook.outcome"] == "failed"
    assert attempt.attributes["http.response.status_code"] == 500
    assert attempt.status_code == STATUS_ERROR
    [post] = [s for s in spans if s.parent_span_id == attempt.span_id]
    assert (post.kind, _status_of(post), _url_of(post)) == (
        SPAN_KIND_CLIENT,
        500,
        failing_hook.url,
    )

    # Nothing a collector receives names the patient or carries a secret or a query string.
    private_key = platform.org.keys["test"].private_key
    for span in spans:
        for text in span.every_text():
            assert patient_id not in text, (span.name, text)
            assert SECRET_IN_QUERY not in text, (span.name, text)
            assert private_key not in text, (span.name, text)
            assert "Bearer " not in text, (span.name, text)
        for key in ("url.full", "http.url", "http.target", "url.path"):
            assert "?" not in str(span.attributes.get(key, "")), (span.name, key)
        assert "url.query" not in span.attributes
