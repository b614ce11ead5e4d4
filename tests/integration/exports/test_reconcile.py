"""Every export task ends: the reconciler re-queues or ends tasks whose job can no longer finish.

Before it, a task whose job failed (its retries spent on a database outage, say) stayed `pending`
forever, a new export request for the connection returned it again, and its staging rows stayed.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg
import pytest

from ehiconnect.exports.reconcile import reconcile_exports
from ehiconnect.runtime import Runtime
from ehiconnect.storage.port import StorageError
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import drain, start, status
from tests.integration.exports.test_faults import _complete


def _sql(database_url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(query, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def _end_job(database_url: str, task_id: str, state: str = "failed") -> int:
    """The task's job ends without ending the task (as when its attempts ran out)."""
    [(job_id,)] = _sql(database_url, "SELECT job_id FROM export_tasks WHERE task_id = %s", task_id)
    _sql(
        database_url,
        "UPDATE procrastinate_jobs SET status = %s WHERE id = %s",
        state,
        job_id,
    )
    assert isinstance(job_id, int)
    return job_id


def _failed_events(database_url: str, task_id: str) -> list[dict[str, object]]:
    rows = _sql(
        database_url,
        "SELECT data FROM webhook_events WHERE type = 'patient.ehi_export_failed' "
        "AND data->>'task_id' = %s",
        task_id,
    )
    return [row[0] for row in rows]  # type: ignore[misc]


async def test_a_task_whose_job_failed_is_requeued_and_completes(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    old_job = _end_job(database_url, task_id)

    report = await reconcile_exports(runtime.exports)
    assert report.requeued == 1
    [(new_job, job_status)] = _sql(
        database_url,
        "SELECT t.job_id, j.status::text FROM export_tasks t "
        "JOIN procrastinate_jobs j ON j.id = t.job_id WHERE t.task_id = %s",
        task_id,
    )
    assert new_job != old_job
    assert job_status == "todo"
    # A second pass changes nothing: the new job is alive.
    assert (await reconcile_exports(runtime.exports)).requeued == 0

    await drain(runtime)
    _complete(platform, status(platform, task_id), "harbor", "amy")


async def test_a_task_out_of_budget_fails_with_a_reason_and_a_new_request_starts_afresh(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    # Three runs ended in errors; the staging area holds what they fetched.
    _sql(database_url, "UPDATE export_tasks SET failures = 3 WHERE task_id = %s", task_id)
    _sql(
        database_url,
        "INSERT INTO export_items (task_id, resource_type, resource_id, body) "
        "VALUES (%s, 'Patient', 'x', '\\x7b7d')",
        task_id,
    )
    _end_job(database_url, task_id)

    report = await reconcile_exports(runtime.exports)
    assert report.exhausted == 1

    done = status(platform, task_id)
    assert done["status"] == "failed"
    assert done["failure_reason"] == "suppressed_please_contact"
    [event] = _failed_events(database_url, task_id)
    assert event["failure_reason"] == "suppressed_please_contact"
    assert _sql(database_url, "SELECT count(*) FROM export_items WHERE task_id = %s", task_id) == [
        (0,)
    ]
    # Ending it again is a no-op: one event.
    await reconcile_exports(runtime.exports)
    assert len(_failed_events(database_url, task_id)) == 1
    assert start(platform, connection_id) != task_id


async def test_killed_runs_do_not_spend_the_budget(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    # Two runs were killed with their workers and one ended in an error: budget left.
    _sql(database_url, "UPDATE export_tasks SET runs = 3, failures = 1 WHERE task_id = %s", task_id)
    _end_job(database_url, task_id)
    assert (await reconcile_exports(runtime.exports)).requeued == 1
    await drain(runtime)
    assert status(platform, task_id)["status"] == "success"


async def test_a_task_past_its_deadline_times_out_even_without_a_worker(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    _sql(database_url, "UPDATE export_tasks SET deadline_at = %s WHERE task_id = %s", past, task_id)

    assert (await reconcile_exports(runtime.exports)).timed_out == 1
    done = status(platform, task_id)
    assert done["failure_reason"] == "timeout"
    assert done["progress"]["failed_in_phase"] == "queued"  # it never started
    [event] = _failed_events(database_url, task_id)
    assert event["failure_reason"] == "timeout"
    # The job that was still queued finds its task ended and does nothing.
    await drain(runtime)
    assert status(platform, task_id)["status"] == "failed"


async def test_staging_left_by_an_ended_task_is_removed(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    await drain(runtime)
    assert status(platform, task_id)["status"] == "success"
    # A crawl that was cancelled late wrote after the task ended.
    _sql(
        database_url,
        "INSERT INTO export_steps (task_id, step, done, count) VALUES (%s, 'search:X', false, 0)",
        task_id,
    )
    assert (await reconcile_exports(runtime.exports)).staging_cleared == 1
    assert _sql(database_url, "SELECT count(*) FROM export_steps WHERE task_id = %s", task_id) == [
        (0,)
    ]
    assert status(platform, task_id)["status"] == "success"


async def test_storage_failing_after_a_success_leaves_it_a_success_and_the_next_pass_cleans_up(
    platform: Platform,
    runtime: Runtime,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    folder = runtime.settings.data_dir / "exports" / "staging" / task_id

    async def unreachable(prefix: str) -> None:
        raise StorageError(f"could not reach S3 for {prefix!r}; check the endpoint URL")

    monkeypatch.setattr(runtime.exports.blobs, "delete_folder", unreachable)
    with caplog.at_level(logging.WARNING):
        await drain(runtime)
    assert status(platform, task_id)["status"] == "success"
    # The run that published it is not counted as failed, and its job is not run again.
    assert _sql(database_url, "SELECT failures FROM export_tasks WHERE task_id = %s", task_id) == [
        (0,)
    ]
    assert any("staging could not be deleted" in message for message in caplog.messages)
    assert folder.exists()  # kept, with the rows naming it, for the next pass
    assert (await reconcile_exports(runtime.exports)).staging_cleared == 0  # still failing
    monkeypatch.undo()
    assert (await reconcile_exports(runtime.exports)).staging_cleared == 1
    assert not folder.exists()
    assert _sql(database_url, "SELECT count(*) FROM export_items WHERE task_id = %s", task_id) == [
        (0,)
    ]
