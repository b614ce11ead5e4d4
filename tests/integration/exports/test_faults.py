"""Exports against a misbehaving health system: each ends complete or with the right reason."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import psycopg
import pytest

from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import (
    FAST_STALL_RECOVERY,
    download,
    drain,
    expected,
    finished_by,
    read_export,
    start,
    status,
    worker_process,
)


def _fast_retries(settings: Settings, attempts: int = 12) -> None:
    settings.exports.max_attempts = attempts
    settings.exports.backoff_base_seconds = 0.02
    settings.exports.backoff_cap_seconds = 0.2


async def _export(
    platform: Platform, runtime: Runtime, slug: str, username: str
) -> dict[str, object]:
    connection_id = platform.connect(slug, username)["org_connection_id"]
    task_id = start(platform, connection_id)
    await drain(runtime)
    return status(platform, task_id)


def _complete(platform: Platform, done: dict[str, object], slug: str, username: str) -> None:
    assert done["status"] == "success", done
    files = done["files"]
    assert isinstance(files, list)
    url = (
        f"{platform.api.url}/v1/bridge/fhir/ehi-export/{done['task_id']}"
        f"/download/{files[0]['file_id']}"
    )
    keys, binaries = read_export(download(platform, url).content)
    want_keys, want_hashes = expected(slug, username)
    assert len(keys) == len(set(keys))
    manifest = download(platform, f"{platform.api.url}/v1/fhir/bulkstatus/{done['task_id']}")
    errors = [download(platform, e["url"]).text for e in manifest.json()["error"]]
    assert set(keys) == want_keys, errors
    assert binaries == want_hashes


async def test_transient_faults_still_give_a_complete_export(
    platform: Platform, runtime: Runtime, settings: Settings, sandbox_state: SandboxState
) -> None:
    _fast_retries(settings)
    sandbox_state.set_faults(
        "summit",
        Faults(
            rate_limit_share=0.3,
            retry_after_s=1,
            server_error_share=0.1,
            drop_connection_share=0.05,
            malformed_json_share=0.05,
        ),
    )
    done = await _export(platform, runtime, "summit", "tess")
    _complete(platform, done, "summit", "tess")
    progress = done["progress"]
    assert isinstance(progress, dict)
    assert progress["retries"] > 0  # the faults were met, and overcome


async def test_access_token_expiring_mid_crawl_is_refreshed(
    platform: Platform, runtime: Runtime, sandbox_state: SandboxState
) -> None:
    sandbox_state.set_faults("cedar", Faults(expire_access_tokens_after=10))
    done = await _export(platform, runtime, "cedar", "theo")
    _complete(platform, done, "cedar", "theo")


async def test_refresh_refused_fails_with_token_refresh_failure(
    platform: Platform, runtime: Runtime, sandbox_state: SandboxState, database_url: str
) -> None:
    sandbox_state.set_faults(
        "harbor", Faults(expire_access_tokens_after=2, refresh_invalid_grant=True)
    )
    done = await _export(platform, runtime, "harbor", "tina")
    assert done["status"] == "failed"
    assert done["failure_reason"] == "token_refresh_failure"
    with psycopg.connect(database_url) as conn:
        [(data,)] = conn.execute(
            "SELECT data FROM webhook_events WHERE type = 'patient.ehi_export_failed'"
        ).fetchall()
        revoked = conn.execute("SELECT status FROM org_connections").fetchone()
        staged = conn.execute("SELECT count(*) FROM export_items").fetchone()
    assert data["failure_reason"] == "token_refresh_failure"
    assert data["task_id"] == done["task_id"]
    assert revoked == ("revoked",)
    assert staged == (0,)  # nothing partial is left behind


async def test_a_page_that_never_parses_lands_in_the_error_report(
    platform: Platform, runtime: Runtime, settings: Settings, sandbox_state: SandboxState
) -> None:
    _fast_retries(settings, attempts=2)
    sandbox_state.set_faults("summit", Faults(malformed_json_share=1.0))
    done = await _export(platform, runtime, "summit", "tess")
    # Pages are lost but the patient was read: a success that says what is missing.
    assert done["status"] == "success", done
    manifest = download(platform, f"{platform.api.url}/v1/fhir/bulkstatus/{done['task_id']}")
    errors = manifest.json()["error"]
    assert errors
    assert errors[0]["count"] > 0
    report = download(platform, errors[0]["url"]).text.splitlines()
    assert report
    assert all('"resourceType":"OperationOutcome"' in line for line in report)


async def test_a_deadline_ends_the_export_with_timeout(
    platform: Platform, runtime: Runtime, settings: Settings, sandbox_state: SandboxState
) -> None:
    settings.exports.deadline_minutes = 1.5 / 60
    sandbox_state.set_faults("harbor", Faults(latency_ms=400))
    done = await _export(platform, runtime, "harbor", "amy")
    assert done["status"] == "failed"
    assert done["failure_reason"] == "timeout"


async def test_a_killed_worker_is_resumed_and_the_file_has_each_resource_once(
    platform: Platform,
    runtime: Runtime,
    settings: Settings,
    sandbox_state: SandboxState,
    database_url: str,
) -> None:
    sandbox_state.set_faults("harbor", Faults(latency_ms=150))
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)

    def worker(name: str) -> subprocess.Popen[bytes]:
        return worker_process(settings, database_url, name, **FAST_STALL_RECOVERY)

    def staged() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM export_items WHERE task_id = %s", (task_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    first = worker("doomed")
    try:
        deadline = time.monotonic() + 60
        while staged() < 100:
            assert time.monotonic() < deadline, "the first worker never got going"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        assert status(platform, task_id)["status"] == "pending"
        done = finished_by(worker("rescuer"), platform, task_id)
    finally:
        if first.poll() is None:
            first.kill()
    _complete(platform, done, "harbor", "amy")
    with psycopg.connect(database_url) as conn:
        runs = conn.execute(
            "SELECT runs FROM export_tasks WHERE task_id = %s", (task_id,)
        ).fetchone()
    assert runs == (2,)  # resumed once, from the staging area


# A worker whose crawl stages only attachments up to 64 KiB (the rest are downloaded by
# packaging, straight into the file) and whose packaging checkpoints after every attachment.
_SMALL_LIMITS_WORKER = """
import sys
import ehiconnect.crawler.engine as engine
import ehiconnect.exports.package as package
engine.STAGING_LIMIT = 64 * 1024
package.CHECKPOINT_BYTES = 1
from ehiconnect.cli.main import main
sys.argv = ["ehiconnect", *sys.argv[1:]]
main()
"""


async def test_a_worker_killed_while_packaging_resumes_with_the_same_file(
    platform: Platform,
    runtime: Runtime,
    settings: Settings,
    sandbox_state: SandboxState,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ehiconnect.crawler import engine
    from ehiconnect.exports import package

    monkeypatch.setattr(engine, "STAGING_LIMIT", 64 * 1024)
    monkeypatch.setattr(package, "CHECKPOINT_BYTES", 1)
    # The reference: the same record exported without interruption (in this process).
    reference = await _export(platform, runtime, "harbor", "amy")
    _complete(platform, reference, "harbor", "amy")

    sandbox_state.set_faults("harbor", Faults(latency_ms=200))  # time to kill mid-packaging
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    assert task_id != reference["task_id"]

    def worker(name: str) -> subprocess.Popen[bytes]:
        return worker_process(
            settings, database_url, name, script=_SMALL_LIMITS_WORKER, **FAST_STALL_RECOVERY
        )

    def downloads_left() -> tuple[int, int] | None:
        """Attachments left to packaging, (before the checkpoint, from it on), once there is one."""
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT cursor FROM export_steps WHERE task_id = %s AND step = 'package'",
                (task_id,),
            ).fetchone()
            if not row or not row[0] or not json.loads(row[0])["next_attachment"]:
                return None
            after = json.loads(row[0])["next_attachment"]
            counts = conn.execute(
                "SELECT count(*) FILTER (WHERE binary_id < %s), count(*) FILTER "
                "(WHERE binary_id >= %s) FROM export_attachments WHERE task_id = %s AND NOT done",
                (after, after, task_id),
            ).fetchone()
        assert counts is not None
        return int(counts[0]), int(counts[1])

    first = worker("doomed")
    try:
        deadline = time.monotonic() + 90
        while (left := downloads_left()) is None or left[0] < 2:
            assert time.monotonic() < deadline, "packaging never wrote two downloads"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        left = downloads_left()
        assert left is not None
        assert left[1] > 0, "killed too late: nothing was left to resume"
        assert status(platform, task_id)["status"] == "pending"
        done = finished_by(worker("rescuer"), platform, task_id)
    finally:
        if first.poll() is None:
            first.kill()
    _complete(platform, done, "harbor", "amy")
    # Byte for byte the uninterrupted export's file.
    assert done["files"][0]["sha256"] == reference["files"][0]["sha256"]
    assert done["files"][0]["size"] == reference["files"][0]["size"]
    # Resumed at the checkpoint: the rescuer read the metadata and the Patient again, then
    # downloaded only the attachments from the checkpoint on, not those already in the file.
    assert done["progress"]["requests"] == 2 + left[1]
    assert not list(settings.data_dir.rglob("*.partial"))  # no partial copy of the record left
