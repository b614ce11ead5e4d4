"""Housekeeping tasks of the queue itself: recovering jobs whose worker died, old job rows."""

from __future__ import annotations

import logging

import procrastinate
import procrastinate.exceptions
import psycopg

from ehiconnect import metrics
from ehiconnect.lifecycle import LifecycleEvent, log_event
from ehiconnect.queue.context import ports_of
from ehiconnect.settings import JobSettings

log = logging.getLogger(__name__)


async def recover_stalled_jobs(app: procrastinate.App, *, stalled_after_seconds: float) -> int:
    """Put back in the queue every job whose worker stopped sending heartbeats; how many."""
    stalled = list(
        await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_seconds)
    )
    recovered = 0
    for job in stalled:
        try:
            await app.job_manager.retry_job(job)
        except procrastinate.exceptions.ConnectorException as exc:
            # Passes overlap in a fleet (each worker defers one; a killed worker's pass is itself
            # retried): another pass took this job back, or it ended, since the listing. The
            # function refuses with RAISE; anything else is a real database error.
            if not isinstance(exc.__cause__, psycopg.errors.RaiseException):
                raise
            log.info("a stalled job was already taken back", extra={"job_id": job.id})
            continue
        log.warning(
            "retried a job whose worker stopped",
            extra={"job_id": job.id, "task": job.task_name, "worker_id": job.worker_id},
        )
        log_event(LifecycleEvent.JOB_STALLED_RECOVERED, job_id=job.id, task=job.task_name)
        recovered += 1
    metrics.stalled_jobs_recovered(recovered)
    return recovered


async def recover_stalled(context: procrastinate.JobContext, timestamp: int) -> int:
    jobs = ports_of(context, JobSettings)
    return await recover_stalled_jobs(context.app, stalled_after_seconds=jobs.stalled_after_seconds)


async def remove_old_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Delete succeeded job rows past their retention (periodic jobs alone add thousands a day)."""
    hours = ports_of(context, JobSettings).finished_job_retention_hours
    await context.app.job_manager.delete_old_jobs(nb_hours=hours, include_failed=False)


def make_blueprint() -> procrastinate.Blueprint:
    blueprint = procrastinate.Blueprint()
    blueprint.task(name="remove_old_jobs", queueing_lock="remove_old_jobs", pass_context=True)(
        remove_old_jobs
    )
    blueprint.task(name="recover_stalled", queueing_lock="recover_stalled_jobs", pass_context=True)(
        recover_stalled
    )
    return blueprint
