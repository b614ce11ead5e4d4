"""Many API processes starting at once against one database all come up, with one catalog."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from ehiconnect.catalog.builtin import sync_builtin_catalogs
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.catalog_sync import sandbox_catalog_data
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import free_port

REPO = Path(__file__).resolve().parents[3]
SANDBOX = "http://127.0.0.1:8599"  # listed in the catalog; never called here


def _catalog_counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM catalog_endpoints), (SELECT count(*) FROM "
            "catalog_portals), (SELECT count(*) FROM catalog_brands)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _expected_counts() -> tuple[int, int, int]:
    data = sandbox_catalog_data(SANDBOX)
    return len(data.endpoints), len(data.portals), len(data.brands)


async def test_concurrent_sandbox_syncs_end_with_one_copy_of_each_row(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)

    async with Runtime.open(settings) as runtime:

        async def sync() -> None:
            async with runtime.database.transaction() as session:
                await sync_builtin_catalogs(
                    session, settings.catalog.builtin_sources, base_url=SANDBOX
                )

        await asyncio.gather(*(sync() for _ in range(5)))
    assert _catalog_counts(database_url) == _expected_counts()


def test_api_processes_starting_together_all_serve(tmp_path: Path, database_url: str) -> None:
    env = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(tmp_path / "data"),
        "EHICONNECT_API__PUBLIC_BASE_URL": "http://127.0.0.1:8400",
        "EHICONNECT_SANDBOX__BASE_URL": SANDBOX,
        "EHICONNECT_VAULT__KEYS__K1": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "PYTHONPATH": str(REPO),
    }
    ports = [free_port() for _ in range(3)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ehiconnect", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    try:
        waiting = set(range(len(ports)))
        deadline = time.monotonic() + 90
        while waiting:
            assert time.monotonic() < deadline, f"not serving: {[ports[i] for i in waiting]}"
            for index in sorted(waiting):
                process = processes[index]
                if process.poll() is not None:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    raise AssertionError(f"an API process exited at start:\n{stderr[-3000:]}")
                try:
                    response = httpx.get(f"http://127.0.0.1:{ports[index]}/healthz", timeout=2)
                except httpx.TransportError:
                    continue
                assert response.status_code == 200
                waiting.discard(index)
            time.sleep(0.1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    assert _catalog_counts(database_url) == _expected_counts()
