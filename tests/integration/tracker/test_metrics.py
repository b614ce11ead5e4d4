"""`ehiconnect tracker serve --metrics-port`: the tracker's own /metrics, with its jobs by state
read from the ledger, and step failures counted where they happen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ehiconnect.clock import SystemClock
from ehiconnect.db.database import Database
from ehiconnect.testing.servers import free_port
from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker import metrics as tracker_metrics
from ehiconnect.tracker.ledger import Step

REPO = Path(__file__).resolve().parents[3]


def _failures(reason: str) -> float:
    value = tracker_metrics.REGISTRY.get_sample_value(
        "ehiconnect_tracker_step_failures_total", {"step": "export", "reason": reason}
    )
    return value or 0.0


async def test_tracker_serve_exposes_jobs_by_state_and_step_failures(
    database_url: str, tmp_path: Path
) -> None:
    before = _failures("scope_patient_missing")
    database = Database(database_url, pool_size=1)
    now = SystemClock().now()
    try:
        async with database.transaction() as session:
            for n in range(3):
                job = await store.create_job(
                    session, now, org_connection_id=f"c-{n}", external_id=None, brand_id=None
                )
                if n < 2:
                    store.fail(job, Step.EXPORT, "scope_patient_missing", "no patient", now)
    finally:
        await database.close()
    assert _failures("scope_patient_missing") == before + 2

    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "ehiconnect", "tracker", "serve", "--no-worker"]
    command += ["--port", str(port), "--metrics-port", str(metrics_port)]
    process = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                response = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the tracker's metrics never answered"
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert response.status_code == 200
    jobs = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "ehiconnect_tracker_jobs"
    }
    assert jobs == {"failed": 2.0, "consented": 1.0}
