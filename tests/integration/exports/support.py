"""Helpers for export tests: run the queue, read an export, and what the sandbox made."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import SandboxConfig
from ehiconnect.sandbox.generator import attachment_sha256, expected_attachments, expected_resources
from ehiconnect.settings import Settings
from ehiconnect.webhooks.senders import deliver_due
from tests.integration.consent.conftest import Platform
from tests.support.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

REPO = Path(__file__).resolve().parents[3]


async def drain(runtime: Runtime) -> None:
    """Run queued jobs (exports, webhook deliveries) until none is left."""
    await runtime.jobs.run_worker_async(
        wait=False, install_signal_handlers=False, additional_context=runtime.job_context()
    )
    await deliver_due(runtime.webhooks)  # no dispatcher runs here: send what is due


def persona_id(slug: str, username: str) -> str:
    system = SandboxConfig().system(slug)
    assert system is not None
    persona = system.persona_by_username(username)
    assert persona is not None
    return persona.persona_id


def expected(slug: str, username: str) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """(type, id) of every resource and Binary, and each Binary's sha256."""
    pid = persona_id(slug, username)
    keys = set(expected_resources(slug, pid))
    hashes = {spec.binary_id: attachment_sha256(spec) for spec in expected_attachments(slug, pid)}
    keys |= {("Binary", binary_id) for binary_id in hashes}
    return keys, hashes


def start(platform: Platform, connection_id: str) -> str:
    response = httpx.post(
        f"{platform.api.url}/v1/bridge/fhir/ehi-export",
        json={"org_connection_id": connection_id},
        auth=platform.auth(),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] in ("pending", "success")
    task_id: str = data["task_id"]
    return task_id


def status(platform: Platform, task_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}", auth=platform.auth()
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def download(platform: Platform, url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, auth=platform.auth(), headers=headers, timeout=120)


def read_export(body: bytes) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Every (type, id) line in order, and each Binary's decoded sha256."""
    keys: list[tuple[str, str]] = []
    binaries: dict[str, str] = {}
    for line in body.splitlines():
        resource = orjson.loads(line)
        keys.append((resource["resourceType"], resource["id"]))
        if resource["resourceType"] == "Binary":
            binaries[resource["id"]] = hashlib.sha256(
                base64.b64decode(resource["data"])
            ).hexdigest()
    return keys, binaries


def store_exports_in_s3(settings: Settings, s3_server: S3Server) -> Settings:
    """`settings` with export files in the test's S3 server, links presigned for 60 s (before
    any runtime opens)."""
    settings.exports.storage = "s3"
    settings.exports.s3_bucket = BUCKET
    settings.exports.s3_endpoint_url = s3_server.endpoint_url
    settings.exports.s3_access_key_id = ACCESS_KEY
    settings.exports.s3_secret_access_key = SecretStr(SECRET_KEY)
    settings.exports.presigned_url_seconds = 60
    return settings


# A killed worker's job is recovered within seconds: heartbeats twice a second, stalled after 3 s.
FAST_STALL_RECOVERY = {
    "EHICONNECT_JOBS__HEARTBEAT_SECONDS": "0.5",
    "EHICONNECT_JOBS__STALLED_AFTER_SECONDS": "3",
    "EHICONNECT_JOBS__STALLED_CHECK_CRON": "* * * * * */1",
}


def worker_process(
    settings: Settings, database_url: str, name: str, *, script: str | None = None, **env: str
) -> subprocess.Popen[bytes]:
    """An `ehiconnect worker` subprocess on the test's database and data dir; `env` adds
    EHICONNECT_* settings (e.g. EHICONNECT_JOBS__SHUTDOWN_GRACE_SECONDS="1"). `script`: Python
    source run instead of `-m ehiconnect` (it patches a limit, then calls the CLI's main)."""
    environment = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(settings.data_dir),
        "EHICONNECT_API__PORT": str(settings.api.port),
        "PYTHONPATH": str(REPO),
        **env,
    }
    program = ["-c", script] if script is not None else ["-m", "ehiconnect"]
    return subprocess.Popen(
        [sys.executable, *program, "worker", "--name", name], env=environment, cwd=REPO
    )


def finished_by(
    worker: subprocess.Popen[bytes], platform: Platform, task_id: str, *, stop_seconds: float = 15
) -> dict[str, Any]:
    """The export's status once `worker` (started to take over a task) has ended it; the worker
    is then stopped."""
    try:
        deadline = time.monotonic() + 120
        while (done := status(platform, task_id))["status"] == "pending":
            assert time.monotonic() < deadline, "the export was not resumed"
            time.sleep(0.5)
        return done
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(stop_seconds)
