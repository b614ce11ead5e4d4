"""Stage 2 over real HTTP: export each sandbox health system's persona and check every byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ehiconnect.exports.retention import purge_expired_exports
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.generator import expected_attachments
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import (
    download,
    drain,
    expected,
    persona_id,
    read_export,
    start,
    status,
)


@pytest.mark.parametrize(
    ("slug", "username"),
    [("harbor", "amy"), ("cedar", "theo"), ("summit", "tess")],
)
async def test_export_holds_exactly_the_persona_record(
    platform: Platform, runtime: Runtime, database_url: str, slug: str, username: str
) -> None:
    connection_id = platform.connect(slug, username)["org_connection_id"]
    task_id = start(platform, connection_id)
    assert len(task_id) == 32
    await drain(runtime)

    done = status(platform, task_id)
    assert done["status"] == "success", done
    [file] = done["files"]
    with psycopg.connect(database_url) as conn:
        [(data,)] = conn.execute(
            "SELECT data FROM webhook_events WHERE type = 'patient.ehi_export_success'"
        ).fetchall()
    [link] = data["download_links"]
    assert data["task_id"] == task_id
    assert link["content_type"] == "application/fhir+ndjson"
    assert link["sha256"] == file["sha256"]

    response = download(platform, link["url"])
    assert response.status_code == 200
    body = response.content
    assert (
        hashlib.sha256(body).hexdigest() == file["sha256"] == response.headers["x-content-sha256"]
    )
    assert len(body) == file["size"] == int(response.headers["content-length"])

    keys, binaries = read_export(body)
    want_keys, want_hashes = expected(slug, username)
    assert len(keys) == len(set(keys)), "a resource appears twice"
    assert set(keys) == want_keys
    assert binaries == want_hashes  # every attachment's bytes, inline
    assert keys[0][0] == "Patient"
    stats = data["stats"]
    assert stats["total_resources"] == len(want_keys)
    # Progress counts every staged resource and attachment byte, however concurrent the crawl.
    sizes = sum(spec.size for spec in expected_attachments(slug, persona_id(slug, username)))
    assert done["progress"]["resources"] == len(want_keys) - len(want_hashes)
    assert done["progress"]["attachment_bytes"] == sizes
    # The crawl's longest chain of dependent requests, shorter than all it made: they overlapped.
    assert 3 <= done["progress"]["critical_path_requests"] < done["progress"]["requests"]
    assert sum(stats["total_by_resource_type"].values()) == len(want_keys)


async def test_same_task_while_pending_or_retained_and_range_resume(
    platform: Platform, runtime: Runtime
) -> None:
    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    first = start(platform, connection_id)
    assert start(platform, connection_id) == first  # pending: the same task
    await drain(runtime)
    assert start(platform, connection_id) == first  # retained: still the same
    done = status(platform, first)
    file_id = done["files"][0]["file_id"]
    url = f"{platform.api.url}/v1/bridge/fhir/ehi-export/{first}/download/{file_id}"
    whole = download(platform, url).content
    cut = len(whole) // 3
    head = download(platform, url, range=f"bytes=0-{cut - 1}")
    tail = download(platform, url, range=f"bytes={cut}-")
    assert (head.status_code, tail.status_code) == (206, 206)
    assert tail.headers["content-range"] == f"bytes {cut}-{len(whole) - 1}/{len(whole)}"
    assert head.content + tail.content == whole
    assert head.headers["etag"] == tail.headers["etag"]
    unsatisfiable = download(platform, url, range=f"bytes={len(whole) + 10}-")
    assert unsatisfiable.status_code == 416


async def test_other_orgs_and_modes_cannot_reach_an_export(
    platform: Platform, runtime: Runtime
) -> None:
    from tests.integration.conftest import make_org

    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    other = await make_org(runtime, "Other")
    pair = other.keys["test"]
    refused = httpx.post(
        f"{platform.api.url}/v1/bridge/fhir/ehi-export",
        json={"org_connection_id": connection_id},
        auth=(pair.public_id, pair.private_key),
    )
    assert refused.status_code == 404
    task_id = start(platform, connection_id)
    peek = httpx.get(
        f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}",
        auth=(pair.public_id, pair.private_key),
    )
    assert peek.status_code == 404
    live = httpx.get(
        f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}", auth=platform.auth("live")
    )
    assert live.status_code == 403
    assert live.json()["error"] == "api_mode_mismatch"
    assert "use your test key" in live.json()["error_description"]
    bad = httpx.post(f"{platform.api.url}/v1/bridge/fhir/ehi-export", json={}, auth=platform.auth())
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_request"


async def test_the_export_command_starts_and_reports_an_export(
    platform: Platform, runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    connection_id = platform.connect("summit", "tess")["org_connection_id"]
    env = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(runtime.settings.data_dir),
    }

    def cli(*args: str) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "ehiconnect", "export", connection_id, "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        view: dict[str, Any] = json.loads(result.stdout)
        return view

    started = cli()
    assert started["status"] == "pending"
    await drain(runtime)
    finished = cli("--wait")
    assert finished["task_id"] == started["task_id"]
    assert finished["status"] == "success"
    assert finished["stats"]["total_resources"] == len(expected("summit", "tess")[0])


async def test_what_a_killed_writer_left_in_staging_goes_when_the_export_ends(
    platform: Platform, runtime: Runtime
) -> None:
    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    task_id = start(platform, connection_id)
    folder = runtime.settings.data_dir / "exports" / "staging" / task_id
    folder.mkdir(parents=True)
    # A worker killed while writing a staged attachment leaves its temporary file, named by no
    # row of the task's staging: deleting the recorded keys alone left it, PHI, for ever.
    leftover = folder / ".Binary-x.0123456789abcdef.tmp"
    leftover.write_bytes(b"the first half of an attachment")
    await drain(runtime)
    assert status(platform, task_id)["status"] == "success"
    assert not folder.exists()


async def test_retention_deletes_the_file_and_a_new_request_crawls_afresh(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    first = start(platform, connection_id)
    await drain(runtime)
    done = status(platform, first)
    url = (
        f"{platform.api.url}/v1/bridge/fhir/ehi-export/{first}/download/"
        f"{done['files'][0]['file_id']}"
    )
    assert download(platform, url).status_code == 200
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE export_tasks SET expires_at = now() - interval '1 minute'")
    assert await purge_expired_exports(runtime.exports) == 1
    gone = download(platform, url)
    assert gone.status_code == 410
    assert gone.json()["error"] == "gone"
    assert status(platform, first)["status"] == "expired"
    assert not list((runtime.settings.data_dir / "exports").rglob("*.jsonl"))
    assert not (runtime.settings.data_dir / "exports" / "exports" / first).exists()  # its folder
    second = start(platform, connection_id)
    assert second != first
