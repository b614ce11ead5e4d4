"""The task queue: transactional enqueue, and recovery of a job whose worker was SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ehiconnect.orgs.service import create_org
from ehiconnect.queue.enqueue import enqueue
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TASKS = "tests.support.job_tasks"


class Rollback(Exception):
    pass


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    settings.jobs.extra_task_modules = [TASKS]
    return settings


def _scalar(url: str, query: str, *params: object) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def _jobs(url: str, task: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status::text, attempts FROM procrastinate_jobs WHERE task_name = %s", (task,)
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


async def _drain(runtime: Runtime) -> None:
    """Run a worker until the queue is empty."""
    await runtime.jobs.run_worker_async(
        wait=False, install_signal_handlers=False, additional_context=runtime.job_context()
    )


async def test_rolled_back_transaction_leaves_no_job(runtime: Runtime, database_url: str) -> None:
    with pytest.raises(Rollback):  # noqa: PT012 (the block is the transaction under test)
        async with runtime.database.transaction() as session:
            org = await create_org(session, runtime.clock, name="Never")
            await enqueue(session, runtime.jobs, "job_tasks:note_org", org_id=org.org_id)
            raise Rollback
    assert _jobs(database_url, "job_tasks:note_org") == []
    assert _scalar(database_url, "SELECT count(*) FROM organizations") == 0


async def test_job_is_invisible_until_its_row_commits(runtime: Runtime, database_url: str) -> None:
    async with runtime.database.transaction() as session:
        org = await create_org(session, runtime.clock, name="Atomic")
        await enqueue(session, runtime.jobs, "job_tasks:note_org", org_id=org.org_id)
        # Another connection (a worker) sees neither the job nor the row yet.
        await _drain(runtime)
        assert _jobs(database_url, "job_tasks:note_org") == []
    assert _jobs(database_url, "job_tasks:note_org") == [("todo", 0)]
    await _drain(runtime)
    assert _jobs(database_url, "job_tasks:note_org") == [("succeeded", 1)]
    saw = _scalar(
        database_url,
        "SELECT count(*) FROM audit_log WHERE action = 'test.saw_org' AND org_id = %s",
        org.org_id,
    )
    assert saw == 1


async def test_unknown_task_name_is_a_clear_error(runtime: Runtime) -> None:
    async with runtime.database.transaction() as session:
        with pytest.raises(LookupError, match=r"known: .*maintenance:recover_stalled"):
            await enqueue(session, runtime.jobs, "nope:nothing")


@pytest.fixture
def worker_env(settings: Settings, database_url: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "EHICONNECT_DATABASE_URL": database_url,
            "EHICONNECT_DATA_DIR": str(settings.data_dir),
            "EHICONNECT_JOBS__EXTRA_TASK_MODULES": f'["{TASKS}"]',
            "EHICONNECT_JOBS__HEARTBEAT_SECONDS": "0.5",
            "EHICONNECT_JOBS__STALLED_AFTER_SECONDS": "3",
            "EHICONNECT_JOBS__STALLED_CHECK_CRON": "* * * * * */1",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


class Workers:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "ehiconnect", "worker", "--name", name],
            env=self.env,
            cwd=REPO,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(worker_env: dict[str, str]) -> Iterator[Workers]:
    pool = Workers(worker_env)
    yield pool
    pool.stop_all()


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


async def test_job_of_a_killed_worker_is_run_by_another(
    runtime: Runtime, database_url: str, workers: Workers
) -> None:
    marker = uuid.uuid4().hex
    async with runtime.database.transaction() as session:
        await enqueue(session, runtime.jobs, "job_tasks:slow_marker", marker=marker, seconds=4)

    def count(action: str) -> int:
        value = _scalar(
            database_url,
            "SELECT count(*) FROM audit_log WHERE action = %s AND task_id = %s",
            action,
            marker,
        )
        assert isinstance(value, int)
        return value

    first = workers.start("doomed")
    _wait_for(lambda: count("test.started") == 1, 30, "the first worker to start the job")
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    assert [status for status, _ in _jobs(database_url, "job_tasks:slow_marker")] == ["doing"]

    workers.start("rescuer")
    _wait_for(lambda: count("test.finished") == 1, 60, "another worker to finish the job")
    assert count("test.started") == 2  # at-least-once: the job ran again from the start
    assert [status for status, _ in _jobs(database_url, "job_tasks:slow_marker")] == ["succeeded"]
