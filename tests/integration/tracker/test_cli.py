"""`ehiconnect tracker status|failures` against a real database, in text and --json; `tracker
migrate`; `tracker worker` running the tracker's jobs as a process of its own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ehiconnect.cli.tracker import register
from ehiconnect.clock import SystemClock
from ehiconnect.db.database import Database
from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker import TRACKER_MIGRATIONS, TrackerRuntime
from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.ledger import JobState, Step
from tests.integration.tracker.fake_platform import PRIVATE_KEY, PUBLIC_ID, FakePlatform
from tests.integration.tracker.helpers import forward, job_of, widget_complete


async def _jobs(url: str) -> None:
    database = Database(url, pool_size=1)
    now = SystemClock().now()
    failures = [
        ("brand-harbor", Step.EXPORT, "scope_patient_missing"),
        ("brand-harbor", Step.EXPORT, "scope_patient_missing"),
        ("brand-summit", Step.DOWNLOAD, "attempts_exhausted"),
    ]
    try:
        async with database.transaction() as session:
            for brand, step, reason in failures:
                job = await store.create_job(
                    session, now, org_connection_id=f"c-{brand}", external_id=None, brand_id=brand
                )
                if step == Step.DOWNLOAD:
                    for state in (JobState.EXPORT_REQUESTED, JobState.EXPORT_READY):
                        store.move(job, state, now)
                store.fail(job, step, reason, f"{reason} happened", now)
            await store.create_job(
                session, now, org_connection_id="c-ok", external_id=None, brand_id="brand-ok"
            )
    finally:
        await database.close()


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("EHICONNECT_DATABASE_URL", database_url)
    monkeypatch.setenv("EHICONNECT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    asyncio.run(_jobs(database_url))
    app = typer.Typer()
    app.command("noop")(lambda: None)
    register(app)
    return app


def test_failures_grouped_by_reason_health_system_and_step(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["tracker", "failures", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total"] == 3
    assert report["by_reason"] == {"scope_patient_missing": 2, "attempts_exhausted": 1}
    first, second = report["groups"]
    assert (first["reason"], first["health_system"], first["step"], first["count"]) == (
        "scope_patient_missing",
        "brand-harbor",
        "export",
        2,
    )
    assert (second["health_system"], second["step"]) == ("brand-summit", "download")

    text = CliRunner().invoke(cli, ["tracker", "failures"])
    assert text.exit_code == 0
    assert "scope_patient_missing" in text.output
    assert "brand-summit" in text.output


def test_status_counts_jobs_by_state(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["tracker", "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["jobs_by_state"]["failed"] == 3
    assert data["jobs_by_state"]["consented"] == 1
    assert len(data["recent_jobs"]) == 4
    text = CliRunner().invoke(cli, ["tracker", "status"])
    assert "failed" in text.output


def test_migrate_names_the_trackers_revision(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["tracker", "migrate"])
    assert result.exit_code == 0, result.output
    assert f"tracker tables at revision {TRACKER_MIGRATIONS.head()}" in result.output


async def test_tracker_worker_runs_the_jobs_with_the_trackers_own_settings(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    database_url: str,
    tmp_path: Path,
) -> None:
    """`ehiconnect tracker worker`, a process of its own configured only by the environment
    (`EHICONNECT_TRACKER__…`), confirms a consent and requests its export: the work the
    platform's worker no longer does."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EHICONNECT_")}
    env = clean | {
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(tmp_path / "worker-data"),
        "EHICONNECT_TRACKER__PLATFORM_BASE_URL": f"{platform.base_url}/v1",
        "EHICONNECT_TRACKER__PUBLIC_ID": PUBLIC_ID,
        "EHICONNECT_TRACKER__PRIVATE_KEY": PRIVATE_KEY,
        "EHICONNECT_TRACKER__WORKER_POLL_SECONDS": "0.2",
    }
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    worker = subprocess.Popen([sys.executable, "-m", "ehiconnect", "tracker", "worker"], env=env)
    try:
        state = None
        for _ in range(150):
            state = (await job_of(tracker, connection_id)).state
            if state == JobState.EXPORT_REQUESTED:
                break
            await asyncio.sleep(0.2)
        assert state == JobState.EXPORT_REQUESTED
        assert platform.export_requests == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
