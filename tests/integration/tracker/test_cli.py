"""`ehiconnect tracker status|failures` against a real database, in text and --json."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ehiconnect.cli.tracker import register
from ehiconnect.clock import SystemClock
from ehiconnect.db.database import Database
from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.ledger import JobState, Step


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
