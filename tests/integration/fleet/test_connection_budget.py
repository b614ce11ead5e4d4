"""A worker's database connections stay within the budget docs/deploy.md gives for its role.

A real `ehiconnect worker` process runs several exports at once while the test samples
`pg_stat_activity` by `application_name`: the names tell the worker's connections apart from
the test's own (API and runtime in this process), and their peak must stay within the formula.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg

from ehiconnect.db.pools import WEBHOOK_LISTENER_NAME, ProcessRole, plan_pools
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import start, status

REPO = Path(__file__).resolve().parents[3]
CONCURRENCY = 3
PERSONAS = [
    ("harbor", "amy"),
    ("cedar", "beth"),
    ("summit", "carl"),
    ("harbor", "tina"),
    ("cedar", "theo"),
    ("summit", "tess"),
]


class ActivitySampler:
    """Polls pg_stat_activity for one database in a thread; keeps the peak per application."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.peak: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ActivitySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True, application_name="sampler") as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() GROUP BY 1"
                ).fetchall()
                for name, count in rows:
                    self.peak[str(name)] = max(self.peak[str(name)], int(count))
                self.samples += 1
                self._stop.wait(0.02)


def test_a_workers_connections_stay_within_its_budget(
    platform: Platform, settings: Settings, sandbox_state: SandboxState, database_url: str
) -> None:
    for slug in ("harbor", "cedar", "summit"):
        sandbox_state.set_faults(slug, Faults(latency_ms=20))
    connections = [platform.connect(slug, user)["org_connection_id"] for slug, user in PERSONAS]
    env = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(settings.data_dir),
        "EHICONNECT_API__PORT": str(settings.api.port),
        "PYTHONPATH": str(REPO),
    }
    with ActivitySampler(database_url) as sampler:
        worker = subprocess.Popen(
            [sys.executable, "-m", "ehiconnect", "worker", "--concurrency", str(CONCURRENCY)],
            env=env,
            cwd=REPO,
        )
        try:
            tasks = [start(platform, connection_id) for connection_id in connections]
            deadline = time.monotonic() + 240
            pending = set(tasks)
            while pending:
                assert worker.poll() is None, "the worker exited"
                assert time.monotonic() < deadline, f"exports still pending: {pending}"
                pending = {t for t in pending if status(platform, t)["status"] == "pending"}
                time.sleep(0.3)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert [status(platform, t)["status"] for t in tasks] == ["success"] * len(tasks)

    budget = plan_pools(ProcessRole.WORKER, settings.db, CONCURRENCY)
    # The formula of docs/deploy.md for a worker with default pools: concurrency + 7.
    assert budget.total == CONCURRENCY + 7
    worker_peak = sampler.peak["ehiconnect-worker"]
    listener_peak = sampler.peak[WEBHOOK_LISTENER_NAME]
    assert sampler.samples > 10
    assert worker_peak > CONCURRENCY  # the worker's connections were seen, and it was busy
    assert listener_peak == 1
    assert worker_peak + listener_peak <= budget.total, sampler.peak
