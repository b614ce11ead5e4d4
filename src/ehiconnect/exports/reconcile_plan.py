"""What to do with a pending export task whose job may be gone (pure).

An export task is `pending` until its job drives it to an end. If the job itself ends without
doing so — its retries ran out on errors the runner could not record, an operator deleted it, a
database outage interrupted the runner's last write — nothing else would ever end the task: the
customer polls a task that cannot finish, and a new request returns it again. The reconciler asks
this module, for each pending task, what to do.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class JobState(enum.StrEnum):
    """procrastinate's job statuses, plus `missing` (no job row at all)."""

    TODO = "todo"
    DOING = "doing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABORTING = "aborting"
    ABORTED = "aborted"
    MISSING = "missing"


class Verdict(enum.StrEnum):
    KEEP = "keep"
    """The job is queued or running: leave it to the job."""
    REQUEUE = "requeue"
    """The job ended but the task has retry budget left: queue a new job, resuming from staging."""
    FAIL_TIMEOUT = "fail_timeout"
    """Past its deadline: end the task as `timeout`."""
    FAIL_EXHAUSTED = "fail_exhausted"
    """The job ended and the task has no retry budget left: end it for the operator to look at."""


LIVE_JOB_STATES = frozenset({JobState.TODO, JobState.DOING, JobState.ABORTING})


@dataclass(frozen=True)
class PendingTask:
    task_id: str
    deadline_at: dt.datetime
    failures: int
    job_state: JobState


def judge(task: PendingTask, *, now: dt.datetime, max_failures: int) -> Verdict:
    """The verdict for one pending task.

    The deadline comes first: a crawl checks it itself, but a task whose job never runs again
    would otherwise wait forever. A live job is left alone — a stalled one is the stalled-job
    recovery's, which puts it back in the queue.
    """
    if now >= task.deadline_at:
        return Verdict.FAIL_TIMEOUT
    if task.job_state in LIVE_JOB_STATES:
        return Verdict.KEEP
    if task.failures >= max_failures:
        return Verdict.FAIL_EXHAUSTED
    return Verdict.REQUEUE
