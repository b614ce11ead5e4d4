"""`ehiconnect demo` run the way a newcomer runs it, twice, in one data directory.

Nothing is configured but the data directory and three free ports, so the demo starts its own
embedded PostgreSQL there (with EHICONNECT_TEST_DATABASE_URL set, it gets a fresh database on
that server instead), and every part runs for real: the sandbox, the platform API and worker, the
tracker and its worker. Each run is its own process, as when typed twice in a shell.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psycopg
import pytest

from ehiconnect.db.embedded import ensure_embedded_postgres, stop_embedded_postgres
from ehiconnect.testing.servers import free_port
from tests.integration.exports.support import expected

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's basetemp (a concurrent pytest run may rotate it away), and short: the
    # embedded server's Unix socket lives in it.
    scratch = Path(tempfile.mkdtemp(prefix="ehiconnect-demo-"))
    try:
        yield scratch / "data"
    finally:
        stop_embedded_postgres(scratch / "data")
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def env(data_dir: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    api, sandbox, tracker = sorted(ports)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EHICONNECT_")}
    env = clean | {
        "EHICONNECT_DATA_DIR": str(data_dir),
        "EHICONNECT_API__PORT": str(api),
        "EHICONNECT_SANDBOX__BASE_URL": f"http://127.0.0.1:{sandbox}",
        "EHICONNECT_TRACKER__PORT": str(tracker),
    }
    if not os.environ.get("EHICONNECT_TEST_DATABASE_URL"):
        yield env
        return
    postgres = request.getfixturevalue("postgres")
    url = postgres.create_database()
    try:
        yield env | {"EHICONNECT_DATABASE_URL": url}
    finally:
        postgres.drop_database(url)


def run_demo(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "ehiconnect", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    # Progress goes to stderr, the keys only into the summary the user asked for.
    for secret in (summary["keys"]["private_key"], summary["keys"]["webhook_secret"]):
        assert secret not in result.stderr
    return summary


def query(env: dict[str, str], data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the demo's database, after the demo stopped (its embedded server with it)."""
    url = env.get("EHICONNECT_DATABASE_URL") or ensure_embedded_postgres(data_dir)
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_demo_collects_the_record_and_a_second_run_reuses_the_org(
    env: dict[str, str], data_dir: Path
) -> None:
    want_keys, _ = expected("harbor", "amy")
    want_types = Counter(kind for kind, _ in want_keys)

    first = run_demo(env)

    # The export the tracker collected is the persona's whole record, as the sandbox made it.
    assert (first["persona"], first["system"]) == ("amy", "harbor")
    assert first["total_resources"] == len(want_keys)
    assert first["resources_by_type"] == dict(want_types)
    # The tracker's copy of the file is the one the signed webhook announced, byte for byte.
    body = Path(first["file"]["location"]).read_bytes()
    assert len(body) == first["file"]["size"]
    assert hashlib.sha256(body).hexdigest() == first["file"]["sha256"]
    assert body.count(b"\n") == len(want_keys)
    # The tracker's FHIR search (the summary's curl) found every Observation of the patient.
    assert first["observations_in_fhir_store"] == want_types["Observation"]
    [(patient_id,)] = [(rid,) for kind, rid in want_keys if kind == "Patient"]
    assert first["patient_id"] == patient_id
    assert first["org_reused"] is False
    # The summary's documented shape (--json): ids, stats, bytes, sha256, durations, ingested.
    assert len(first["task_id"]) == 32
    assert first["org_connection_id"] in first["try"][1]
    assert first["stats"] == {
        "total_resources": len(want_keys),
        "total_by_resource_type": dict(want_types),
    }
    assert (first["bytes"], first["sha256"]) == (len(body), first["file"]["sha256"])
    stages = ("setup", "consent", "export", "download", "ingest", "notify", "total")
    assert set(first["durations"]) == set(stages)
    assert all(
        isinstance(first["durations"][s], float) and first["durations"][s] >= 0 for s in stages
    )
    assert first["durations"]["total"] >= first["durations"]["export"]
    assert first["ingested"] == {"fhir_store": len(want_keys), "parquet": len(want_keys)}
    assert "console" not in first  # a console login only with --keep-running

    second = run_demo(env)

    assert second["org_reused"] is True
    assert second["org_id"] == first["org_id"]
    assert second["keys"] == first["keys"]  # same key pair, same endpoint and secret
    assert second["org_connection_id"] != first["org_connection_id"]  # the patient consented again
    assert second["total_resources"] == len(want_keys)

    # One organization; both exports completed; the tracker ingested both jobs; its FHIR store
    # holds the persona's record, each resource once; Parquet has every Observation.
    assert query(env, data_dir, "SELECT org_id FROM organizations") == [(first["org_id"],)]
    exports = query(env, data_dir, "SELECT task_id, status FROM export_tasks")
    assert sorted(exports) == sorted(
        [(first["task_id"], "success"), (second["task_id"], "success")]
    )
    jobs = query(env, data_dir, "SELECT job_id, state FROM tracker_jobs")
    assert sorted(jobs) == sorted(
        [(first["tracker_job_id"], "ingested"), (second["tracker_job_id"], "ingested")]
    )
    stored = query(env, data_dir, "SELECT resource_type, resource_id FROM tracker_fhir_resources")
    assert set(stored) == want_keys
    assert len(stored) == len(want_keys)
    observations = str(Path(second["parquet_dir"]) / "Observation" / "*.parquet")
    row = (
        duckdb.connect()
        .execute("select count(distinct id) from read_parquet(?)", [observations])
        .fetchone()
    )
    assert row == (want_types["Observation"],)


def test_a_failed_stage_exits_non_zero_with_a_json_answer(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ehiconnect", "demo", "--json", "--timeout", "0.05"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    answer = json.loads(result.stdout)
    assert answer["success"] is False
    assert "gave up after" in answer["error"]


def test_keep_running_prints_a_console_login_that_signs_in(env: dict[str, str]) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "ehiconnect", "demo", "--json", "--keep-running"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:  # the summary is one indented JSON object: ends with "}"
            lines.append(line)
            if line.rstrip("\n") == "}":
                break
        login = json.loads("".join(lines))["console"]
        assert login["url"].endswith("/console/")
        with httpx.Client(timeout=20, follow_redirects=False) as http:
            form = http.get(login["url"] + "login")
            token = re.search(r'name="login_token" value="([^"]+)"', form.text)
            assert token, form.text
            signed_in = http.post(
                login["url"] + "login",
                data={
                    "email": login["email"],
                    "password": login["password"],
                    "login_token": token.group(1),
                },
            )
            assert signed_in.status_code == 303, signed_in.text
            assert http.get(login["url"]).status_code == 200
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
