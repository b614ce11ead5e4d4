"""Which pending export tasks the reconciler leaves, re-queues or ends."""

from __future__ import annotations

import datetime as dt

import pytest

from ehiconnect.exports.reconcile_plan import JobState, PendingTask, Verdict, judge

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=30)


def _task(state: JobState, *, failures: int = 0, deadline: dt.datetime = LATER) -> PendingTask:
    return PendingTask("t" * 32, deadline, failures, state)


@pytest.mark.parametrize("state", [JobState.TODO, JobState.DOING, JobState.ABORTING])
def test_a_live_job_is_left_to_run(state: JobState) -> None:
    assert judge(_task(state, failures=5), now=NOW, max_failures=3) is Verdict.KEEP


@pytest.mark.parametrize(
    "state",
    [JobState.FAILED, JobState.MISSING, JobState.SUCCEEDED, JobState.CANCELLED, JobState.ABORTED],
)
def test_an_ended_job_is_replaced_while_the_task_has_budget(state: JobState) -> None:
    assert judge(_task(state, failures=2), now=NOW, max_failures=3) is Verdict.REQUEUE
    assert judge(_task(state, failures=3), now=NOW, max_failures=3) is Verdict.FAIL_EXHAUSTED


@pytest.mark.parametrize("state", list(JobState))
def test_past_its_deadline_a_task_times_out_whatever_its_job(state: JobState) -> None:
    assert judge(_task(state, deadline=NOW), now=NOW, max_failures=3) is Verdict.FAIL_TIMEOUT
