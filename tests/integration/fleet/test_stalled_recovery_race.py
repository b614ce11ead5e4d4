"""Two recovery passes at once (two workers, or a retried pass beside a new one) recover every job.

Each worker defers `maintenance:recover_stalled` on schedule and a killed worker's pass is itself
retried, so passes overlap in a fleet. A pass lists the stalled jobs, then retries them one by
one; when another pass retried one of them in between, procrastinate refuses that retry ("Job was
not found or has an invalid status to retry"). That refusal used to end the pass, leaving the
rest of its list `doing` with no live worker (seen in bench/fleet.py --chaos).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ehiconnect.queue.maintenance import recover_stalled_jobs
from ehiconnect.runtime import Runtime


def _stalled_jobs(url: str, count: int) -> list[int]:
    """`count` jobs `doing` on a worker whose last heartbeat is an hour old."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (now() - interval '1 hour') RETURNING id"
        ).fetchone()
        assert row is not None
        ids = []
        for _ in range(count):
            job = conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, status, worker_id) "
                "VALUES ('default', 'maintenance:remove_old_jobs', 'doing', %s) RETURNING id",
                (row[0],),
            ).fetchone()
            assert job is not None
            ids.append(int(job[0]))
    return ids


def _statuses(url: str, ids: list[int]) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
    return [str(r[0]) for r in rows]


async def test_a_job_another_pass_recovered_first_does_not_end_the_pass(
    runtime: Runtime, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _stalled_jobs(database_url, 3)
    manager = runtime.jobs.job_manager
    listed = list(await manager.get_stalled_jobs(seconds_since_heartbeat=10))
    assert sorted(job.id for job in listed) == ids
    # The other pass, between this pass's listing and its retries, took the first job back.
    first = next(job for job in listed if job.id == ids[0])
    await manager.retry_job(first)

    async def the_listing_made_before(**_: Any) -> list[Any]:
        return listed

    monkeypatch.setattr(manager, "get_stalled_jobs", the_listing_made_before)
    recovered = await recover_stalled_jobs(runtime.jobs, stalled_after_seconds=10)

    assert _statuses(database_url, ids) == ["todo", "todo", "todo"]
    assert recovered == 2  # the two this pass moved; the first was the other pass's
