"""What an operator sees of a run (#14): /metrics of the API and of a worker process move by exactly
what happened, the lifecycle log lines come in order with their keys, and neither the API's nor
the worker's DEBUG logs hold a token, a key, a secret or anything about the patient."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tokens import open_tokens
from ehiconnect.logging import JsonFormatter, RedactingFilter
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults, SandboxConfig
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer, free_port, serve_in_thread
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import download, start, status
from tests.integration.webhooks.helpers import add_endpoint

REPO = Path(__file__).resolve().parents[3]
METRICS_TOKEN = "metrics-token-for-the-test"
EXPORT_EVENTS = ("patient.ehi_export_success", "patient.ehi_export_failed")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(value for (n, have), value in samples.items() if n == name and want <= have)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


@pytest.fixture
def receiver() -> Iterator[tuple[ThreadedServer, list[int]]]:
    """A webhook receiver that answers 500 to its first delivery and 204 to the others."""
    answered: list[int] = []

    async def hook(request: Request) -> Response:
        await request.body()
        answered.append(500 if not answered else 204)
        return Response(status_code=answered[-1])

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as server:
        yield server, answered


@pytest.fixture
def api_logs() -> Iterator[io.StringIO]:
    """This process's logs (the API runs in it) at DEBUG, as `ehiconnect serve` writes them
    with `log_format = "json"`; the in-process sandbox plays the health system and is left out."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    handler.addFilter(lambda record: not record.name.startswith("ehiconnect.sandbox"))
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "procrastinate")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in quiet:  # as configure_logging sets them
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


def lines(text: str) -> list[dict[str, Any]]:
    parsed = []
    for line in text.splitlines():
        if line.startswith("{"):
            parsed.append(orjson.loads(line))
    return parsed


def wait_for(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


def scrape(url: str, **headers: str) -> Samples:
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def attempts(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_attempts").fetchone()
    return int(row[0]) if row else 0


def finished(platform: Platform, task_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := status(platform, task_id))["status"] != "pending" and s,
        f"export {task_id} did not end",
    )


async def test_a_run_moves_the_metrics_and_writes_the_lifecycle_without_secrets(
    platform: Platform,
    runtime: Runtime,
    settings: Settings,
    sandbox_state: SandboxState,
    database_url: str,
    receiver: tuple[ThreadedServer, list[int]],
    api_logs: io.StringIO,
    tmp_path: Path,
) -> None:
    settings.api.metrics_token = SecretStr(METRICS_TOKEN)
    api_metrics = f"{platform.api.url}/metrics"
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    refused = httpx.get(api_metrics, headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "metrics_token_required"
    api_before = scrape(api_metrics, **bearer)

    sandbox_state.set_faults(
        "harbor", Faults(expire_access_tokens_after=2, refresh_invalid_grant=True)
    )
    good = platform.connect("cedar", "theo")["org_connection_id"]
    doomed = platform.connect("harbor", "tina")["org_connection_id"]
    server, answered = receiver
    endpoint = await add_endpoint(
        runtime, platform.org.org_id, f"{server.url}/hook", types=EXPORT_EVENTS
    )
    async with runtime.database.transaction() as session:
        first_tokens = [
            open_tokens(runtime.cipher, row)
            for row in await session.scalars(select(ConnectionTokens))
        ]

    port = free_port()
    worker_log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(settings.data_dir),
        "EHICONNECT_API__PORT": str(settings.api.port),
        "EHICONNECT_LOG_LEVEL": "DEBUG",
        "EHICONNECT_LOG_FORMAT": "json",
        # A failed delivery is retried an hour later: not during this test.
        "EHICONNECT_WEBHOOKS__RETRY_SCHEDULE_SECONDS": "[0, 3600]",
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "ehiconnect", "worker", "--metrics-port", str(port)]
    with worker_log.open("wb") as log_file:
        worker = subprocess.Popen(command, env=env, cwd=REPO, stderr=log_file)
    worker_metrics = f"http://127.0.0.1:{port}/metrics"
    try:

        def worker_up() -> bool:
            try:
                return httpx.get(worker_metrics, timeout=2).status_code == 200
            except httpx.TransportError:
                assert worker.poll() is None, worker_log.read_text()[-3000:]
                return False

        wait_for(worker_up, "the worker's metrics endpoint never answered")
        worker_before = scrape(worker_metrics)

        task_ok = start(platform, good)
        done_ok = finished(platform, task_ok)
        assert done_ok["status"] == "success", done_ok
        wait_for(lambda: attempts(database_url) == 1, "the success event was not attempted")
        worker_mid = scrape(worker_metrics)

        task_bad = start(platform, doomed)
        done_bad = finished(platform, task_bad)
        assert done_bad["failure_reason"] == "token_refresh_failure", done_bad
        wait_for(lambda: attempts(database_url) == 2, "the failure event was not attempted")
        # Read from the database at scrape time (cached a few seconds): the first event's
        # retry, an hour away, is the one delivery pending.
        worker_after = wait_for(
            lambda: (
                (found := scrape(worker_metrics))
                and total(found, "ehiconnect_webhook_deliveries_pending") == 1
                and delta(worker_before, found, "ehiconnect_webhook_attempts_total") == 2
                and found
            ),
            "the worker's metrics never showed the pending retry",
        )
        api_after = scrape(api_metrics, **bearer)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert answered == [500, 204]

    # The API counted the consents and the export requests.
    assert delta(api_before, api_after, "ehiconnect_consent_flows_started_total", mode="test") == 2
    assert delta(api_before, api_after, "ehiconnect_consent_flows_completed_total") == 2
    assert delta(api_before, api_after, "ehiconnect_exports_requested_total", mode="test") == 2

    # The worker counted the exports, their outcomes, the crawl and the webhooks.
    w0, w1, w2 = worker_before, worker_mid, worker_after
    assert delta(w0, w2, "ehiconnect_exports_started_total", mode="test") == 2
    assert delta(w0, w2, "ehiconnect_exports_finished_total", outcome="success") == 1
    assert (
        delta(
            w0,
            w2,
            "ehiconnect_exports_finished_total",
            outcome="failed",
            failure_reason="token_refresh_failure",
        )
        == 1
    )
    assert delta(w0, w2, "ehiconnect_exports_finished_total") == 2
    assert delta(w0, w2, "ehiconnect_export_duration_seconds_count") == 2
    assert delta(w0, w2, "ehiconnect_export_size_bytes_count") == 1
    assert delta(w0, w2, "ehiconnect_export_size_bytes_sum") == done_ok["files"][0]["size"]
    assert delta(w0, w2, "ehiconnect_token_refreshes_total", outcome="refused") == 1
    assert delta(w0, w2, "ehiconnect_token_refreshes_total", outcome="refreshed") == 0
    # Every FHIR request of the successful export, as it recorded them itself.
    assert delta(w0, w1, "ehiconnect_crawl_requests_total") == done_ok["progress"]["requests"]
    assert delta(w0, w1, "ehiconnect_crawl_requests_total", status_class="2xx") > 0
    assert (
        delta(w1, w2, "ehiconnect_crawl_requests_total", status_class="4xx") >= 1
    )  # the 401 that started the refused refresh
    assert delta(w0, w2, "ehiconnect_webhook_attempts_total", outcome="failed") == 1
    assert (
        delta(w0, w2, "ehiconnect_webhook_attempts_total", outcome="failed", status_class="5xx")
        == 1
    )
    assert (
        delta(w0, w2, "ehiconnect_webhook_attempts_total", outcome="succeeded", status_class="2xx")
        == 1
    )
    assert delta(w0, w2, "ehiconnect_webhook_delivery_latency_seconds_count") == 1
    assert ("ehiconnect_webhook_deliveries_pending", frozenset()) in w2
    assert total(w2, "ehiconnect_jobs_stalled_recovered_total") == 0

    # Lifecycle lines, in order, with their keys.
    worker_lines = lines(worker_log.read_text())
    events = [line for line in worker_lines if "event" in line]

    def of_task(task_id: str) -> list[dict[str, Any]]:
        return [e for e in events if e.get("task_id") == task_id]

    ok = of_task(task_ok)
    assert [e["event"] for e in ok[:1]] == ["export.started"]
    phases = [e["phase"] for e in ok if e["event"] == "export.phase_changed"]
    assert phases == ["discover", "patient", "resources", "hydrate", "package"]
    succeeded = [e for e in ok if e["event"] == "export.succeeded"]
    assert len(succeeded) == 1
    assert ok.index(succeeded[0]) > max(
        i for i, e in enumerate(ok) if e["event"] == "export.phase_changed"
    )
    line = succeeded[0]
    assert line["level"] == "info"
    assert line["org_id"] == platform.org.org_id
    assert line["org_connection_id"] == good
    assert line["bytes"] == done_ok["files"][0]["size"]
    assert line["resources"] == done_ok["stats"]["total_resources"]
    assert isinstance(line["duration_ms"], int)
    assert {"platform_type", "api_mode"} <= line.keys()
    attempt_failed = [e for e in ok if e["event"] == "webhook.attempt_failed"]
    assert len(attempt_failed) == 1
    assert attempt_failed[0]["status"] == 500
    assert attempt_failed[0]["endpoint_id"] == endpoint.endpoint_id
    assert attempt_failed[0]["given_up"] is False

    bad = of_task(task_bad)
    assert bad[0]["event"] == "export.started"
    assert bad[-1]["event"] == "export.failed"
    assert bad[-1]["failure_reason"] == "token_refresh_failure"
    assert bad[-1]["org_connection_id"] == doomed
    of_doomed = [e["event"] for e in events if e.get("org_connection_id") == doomed]
    assert of_doomed.index("token.refresh_failed") < of_doomed.index("connection.revoked")
    assert of_doomed.index("connection.revoked") < of_doomed.index("export.failed")

    api_events = [e for e in lines(api_logs.getvalue()) if "event" in e]
    names = [e["event"] for e in api_events]
    assert names.count("consent.started") == 2
    assert names.count("consent.completed") == 2
    requested = [e for e in api_events if e["event"] == "export.requested"]
    assert [e["task_id"] for e in requested] == [task_ok, task_bad]
    completed = [e for e in api_events if e["event"] == "consent.completed"]
    assert [e["org_connection_id"] for e in completed] == [good, doomed]
    assert names.index("consent.started") < names.index("consent.completed")

    # Nothing secret and nothing about the patient in either process's logs.
    async with runtime.database.transaction() as session:
        last_tokens = [
            open_tokens(runtime.cipher, row)
            for row in await session.scalars(select(ConnectionTokens))
        ]
    files = done_ok["files"]
    url = f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_ok}/download/{files[0]['file_id']}"
    patient = next(
        resource
        for resource in map(orjson.loads, download(platform, url).content.splitlines())
        if resource["resourceType"] == "Patient"
    )
    forbidden = {
        "private key": platform.org.keys["test"].private_key,
        "webhook secret": endpoint.secret,
        "metrics token": METRICS_TOKEN,
        "birth date": patient["birthDate"],
        **{f"{p.username}'s name": f"{p.family_name}" for p in personas("cedar", "harbor")},
        **{f"{p.username}'s full name": f"{p.given_name} {p.family_name}" for p in personas()},
    }
    for n, tokens in enumerate(first_tokens + last_tokens):
        forbidden[f"access token {n}"] = tokens.access_token
        if tokens.refresh_token:
            forbidden[f"refresh token {n}"] = tokens.refresh_token
    for name in patient.get("name", []):
        forbidden["patient's family name"] = name.get("family", "") or "-"
    everything = api_logs.getvalue() + worker_log.read_text()
    assert any(line["level"] == "debug" for line in worker_lines)  # DEBUG was on
    for what, value in forbidden.items():
        assert value, what
        assert value not in everything, f"the logs hold the {what}"
    for pattern in ("private_test_", "private_live_", "whsec_", "eyJ"):
        assert pattern not in everything, pattern
    assert not re.search(r"(?i)bearer (?!\[redacted\])", everything)


def personas(*slugs: str) -> list[Any]:
    config = SandboxConfig()
    found = []
    for system in config.systems:
        if not slugs or system.slug in slugs:
            found.extend(system.personas)
    return found
