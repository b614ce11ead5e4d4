"""Tracker jobs (namespace `tracker`, queue `tracker`): thin wrappers over the step functions.

They run on the tracker's own worker only (`TrackerRuntime.jobs`), which gives each the tracker's
runtime in its job context; the platform's worker does not register them.

Every task takes a job id (or nothing, for the periodic ones) and runs one idempotent step; a
step re-delivered after a crash finds the job past it and returns. `lock=<job_id>` is set by the
callers so two steps of one job never run at once.
"""

from __future__ import annotations

import logging

import procrastinate

from ehiconnect.tracker import download_step, export_steps, ingest_step, notify_step
from ehiconnect.tracker.consent_log import purge_widget_cache
from ehiconnect.tracker.runtime import QUEUE, tracker_of

log = logging.getLogger(__name__)

WATCHDOG_CRON = "*/5 * * * *"
PURGE_CRON = "23 * * * *"


async def confirm(context: procrastinate.JobContext, job_id: str) -> None:
    await export_steps.confirm_connection(tracker_of(context), job_id)


async def export(context: procrastinate.JobContext, job_id: str) -> None:
    await export_steps.launch_export(tracker_of(context), job_id)


async def process_webhook(context: procrastinate.JobContext, webhook_id: str) -> None:
    await export_steps.process_webhook(tracker_of(context), webhook_id)


async def download(context: procrastinate.JobContext, job_id: str) -> None:
    await download_step.download(tracker_of(context), job_id)


async def ingest(context: procrastinate.JobContext, job_id: str) -> None:
    await ingest_step.ingest(tracker_of(context), job_id)


async def notify(context: procrastinate.JobContext, job_id: str) -> None:
    await notify_step.notify(tracker_of(context), job_id)


async def watchdog(context: procrastinate.JobContext, timestamp: int) -> int:
    return await export_steps.watchdog(tracker_of(context))


async def purge(context: procrastinate.JobContext, timestamp: int) -> None:
    tracker = tracker_of(context)
    files = await download_step.purge_downloads(tracker)
    async with tracker.database.transaction() as session:
        cached = await purge_widget_cache(session, tracker.clock.now())
    log.info("tracker retention applied", extra={"jobs": files, "widget_events": cached})


def make_blueprint() -> procrastinate.Blueprint:
    """The tracker's tasks, registered under the namespace `tracker`."""
    blueprint = procrastinate.Blueprint()
    for function in (confirm, export, process_webhook, download, ingest, notify):
        blueprint.task(name=function.__name__, pass_context=True, queue=QUEUE)(function)
    watchdog_task = blueprint.task(
        name="watchdog", pass_context=True, queue=QUEUE, queueing_lock="tracker_watchdog"
    )(watchdog)
    blueprint.periodic(cron=WATCHDOG_CRON, periodic_id="tracker_watchdog")(watchdog_task)
    purge_task = blueprint.task(
        name="purge", pass_context=True, queue=QUEUE, queueing_lock="tracker_purge"
    )(purge)
    blueprint.periodic(cron=PURGE_CRON, periodic_id="tracker_purge")(purge_task)
    return blueprint
