"""SIGTERM stops a worker within its grace period and hands its export back (#12).

Before, a worker told to stop waited for its running exports to finish, however long they took,
so a rolling restart or a Kubernetes eviction either hung or ended in a SIGKILL.
"""

from __future__ import annotations

import signal
import time

import psycopg

from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import finished_by, start, status, worker_process
from tests.integration.exports.test_faults import _complete

GRACE_SECONDS = 1
# Far below the export's own length at this latency: the worker cannot just finish it.
STOP_BOUND_SECONDS = 15


def _scalar(database_url: str, query: str, *params: object) -> object:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


async def test_sigterm_hands_a_running_export_back_within_the_grace_period(
    platform: Platform,
    runtime: Runtime,
    settings: Settings,
    sandbox_state: SandboxState,
    database_url: str,
) -> None:
    sandbox_state.set_faults("harbor", Faults(latency_ms=1500))
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    first = worker_process(
        settings,
        database_url,
        "stopping",
        EHICONNECT_JOBS__SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
    )
    try:
        deadline = time.monotonic() + 60
        while (
            _scalar(database_url, "SELECT count(*) FROM export_items WHERE task_id = %s", task_id)
            == 0
        ):
            assert time.monotonic() < deadline, "the first worker never got going"
            time.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        first.wait(STOP_BOUND_SECONDS)
        assert time.monotonic() - stopped_at < STOP_BOUND_SECONDS
    finally:
        if first.poll() is None:
            first.kill()
    # Handed back, not left `doing` for stalled-job recovery.
    job_status = _scalar(
        database_url,
        "SELECT j.status::text FROM export_tasks t JOIN procrastinate_jobs j ON j.id = t.job_id "
        "WHERE t.task_id = %s",
        task_id,
    )
    assert job_status == "todo"
    assert status(platform, task_id)["status"] == "pending"

    sandbox_state.set_faults("harbor", Faults())
    second = worker_process(settings, database_url, "next")
    done = finished_by(second, platform, task_id, stop_seconds=30)
    _complete(platform, done, "harbor", "amy")
