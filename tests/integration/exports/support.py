"""Helpers for export tests: run the queue, read an export, and what the sandbox made."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import SandboxConfig
from ehiconnect.sandbox.generator import attachment_sha256, expected_attachments, expected_resources
from ehiconnect.settings import Settings
from ehiconnect.webhooks.senders import deliver_due
from tests.integration.consent.conftest import Platform

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


def worker_process(
    settings: Settings, database_url: str, name: str, **env: str
) -> subprocess.Popen[bytes]:
    """An `ehiconnect worker` subprocess on the test's database and data dir; `env` adds
    EHICONNECT_* settings (e.g. EHICONNECT_JOBS__SHUTDOWN_GRACE_SECONDS="1")."""
    environment = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(settings.data_dir),
        "EHICONNECT_API__PORT": str(settings.api.port),
        "PYTHONPATH": str(REPO),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ehiconnect", "worker", "--name", name], env=environment, cwd=REPO
    )
