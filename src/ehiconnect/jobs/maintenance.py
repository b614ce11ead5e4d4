"""Housekeeping tasks of the queue itself: recovering jobs whose worker died."""

from __future__ import annotations

import logging

import procrastinate

from ehiconnect.jobs.context import runtime_of

log = logging.getLogger(__name__)


async def recover_stalled_jobs(app: procrastinate.App, *, stalled_after_seconds: float) -> int:
    """Put back in the queue every job whose worker stopped sending heartbeats; how many."""
    stalled = list(
        await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_seconds)
    )
    for job in stalled:
        log.warning(
            "retrying a job whose worker stopped",
            extra={"job_id": job.id, "task": job.task_name, "worker_id": job.worker_id},
        )
        await app.job_manager.retry_job(job)
    return len(stalled)


async def recover_stalled(context: procrastinate.JobContext, timestamp: int) -> int:
    runtime = runtime_of(context)
    return await recover_stalled_jobs(
        context.app, stalled_after_seconds=runtime.settings.jobs.stalled_after_seconds
    )


def make_blueprint() -> procrastinate.Blueprint:
    blueprint = procrastinate.Blueprint()
    blueprint.task(name="recover_stalled", queueing_lock="recover_stalled_jobs", pass_context=True)(
        recover_stalled
    )
    return blueprint
