"""Persistence of the job ledger: jobs, their steps' attempts and timestamps, and an event log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.tracker.ledger import JobState, Step, plan_transition
from ehiconnect.tracker.metrics import step_failed
from ehiconnect.tracker.models import TrackerJob, TrackerJobEvent

# Which timestamp column a state stamps when the job reaches it.
_STAMPS = {
    JobState.EXPORT_REQUESTED: "export_requested_at",
    JobState.EXPORT_READY: "webhook_at",
    JobState.DOWNLOADED: "downloaded_at",
    JobState.INGESTED: "ingested_at",
}


class JobNotFound(LookupError):
    pass


async def create_job(
    session: AsyncSession,
    now: dt.datetime,
    *,
    org_connection_id: str,
    external_id: str | None,
    brand_id: str | None,
) -> TrackerJob:
    job = TrackerJob(
        job_id=uuid.uuid4().hex,
        org_connection_id=org_connection_id,
        external_id=external_id,
        brand_id=brand_id,
        state=JobState.CONSENTED,
        attempts={},
        export_requests=0,
        download_links=[],
        files=[],
        stats={},
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    await session.flush()
    await log_event(session, job.job_id, now, Step.CONFIRM, "consented")
    return job


async def lock_job(session: AsyncSession, job_id: str) -> TrackerJob:
    job = await session.scalar(
        select(TrackerJob).where(TrackerJob.job_id == job_id).with_for_update()
    )
    if job is None:
        raise JobNotFound(f"no tracker job {job_id}; list jobs with `ehiconnect tracker status`")
    return job


async def job_for_task(session: AsyncSession, task_id: str) -> TrackerJob | None:
    return await session.scalar(
        select(TrackerJob).where(TrackerJob.task_id == task_id).with_for_update()
    )


async def open_job_for_connection(
    session: AsyncSession, org_connection_id: str
) -> TrackerJob | None:
    """The connection's job that has not finished yet, if any."""
    return await session.scalar(
        select(TrackerJob)
        .where(
            TrackerJob.org_connection_id == org_connection_id,
            TrackerJob.state.not_in([JobState.INGESTED, JobState.FAILED]),
        )
        .order_by(TrackerJob.created_at.desc())
        .limit(1)
    )


async def start_step(
    session: AsyncSession,
    job_id: str,
    step: Step,
    *,
    ready: JobState,
    running: JobState,
    now: dt.datetime,
) -> TrackerJob | None:
    """The job, locked and `running` its `step` (an attempt counted), when it is `ready` for it or
    already `running` it (a retry, a re-delivered task); None when the job is elsewhere."""
    job = await lock_job(session, job_id)
    if job.state not in (ready, running):
        return None
    move(job, running, now)
    count_attempt(job, step)
    return job


def move(job: TrackerJob, target: JobState, now: dt.datetime) -> bool:
    """Move the job to `target` when allowed; False when it already is at or past it."""
    planned = plan_transition(JobState(job.state), target)
    if planned is None:
        return False
    job.state = planned
    job.updated_at = now
    stamp = _STAMPS.get(planned)
    if stamp:
        setattr(job, stamp, now)
    return True


def count_attempt(job: TrackerJob, step: Step) -> int:
    attempts = dict(job.attempts)
    count = int(attempts.get(step, 0)) + 1
    attempts[step] = count
    job.attempts = attempts
    return count


def reset_attempts(job: TrackerJob, step: Step) -> None:
    attempts = dict(job.attempts)
    attempts.pop(step, None)
    job.attempts = attempts


def fail(job: TrackerJob, step: Step, reason: str, description: str, now: dt.datetime) -> None:
    move(job, JobState.FAILED, now)
    job.failed_step = step
    job.failure_reason = reason
    job.failure_description = description
    step_failed(job, step, reason)


async def log_event(
    session: AsyncSession,
    job_id: str,
    now: dt.datetime,
    step: Step,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        TrackerJobEvent(job_id=job_id, at=now, step=step, outcome=outcome, detail=detail or {})
    )
