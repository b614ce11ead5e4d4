"""Webhook jobs: thin wrappers that open a Deliverer on the worker's runtime.

`deliver_event` is enqueued by `emit` in the emitting transaction; it sends whatever is due (that
event included) at once. `sweep` runs every few seconds and sends every due delivery
(retries, and deliveries whose worker died). `purge` applies log and event retention.
"""

from __future__ import annotations

import logging

import procrastinate

from ehiconnect.jobs.context import runtime_of
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.webhooks.delivery import Deliverer
from ehiconnect.webhooks.history import purge_expired
from ehiconnect.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)

DRAIN_PASSES = 20
SWEEP_CRON = "* * * * * */5"  # every 5 s (the 6th field is seconds): the schedule resolution
PURGE_CRON = "17 * * * *"


def webhook_settings(settings: Settings) -> WebhookSettings:
    """The `webhooks` section of the settings, or the defaults until Settings carries one."""
    section = getattr(settings, "webhooks", None)
    return section if isinstance(section, WebhookSettings) else WebhookSettings()


def deliverer_for(runtime: Runtime) -> Deliverer:
    return Deliverer(
        runtime.database, runtime.clock, webhook_settings(runtime.settings), runtime.cipher
    )


async def deliver_event(context: procrastinate.JobContext, event_id: str) -> int:
    # Everything due, oldest first, not just this event: in a burst the first jobs send whole
    # batches and the later ones find their event already delivered.
    async with deliverer_for(runtime_of(context)) as deliverer:
        report = await deliverer.run_until_idle(max_passes=DRAIN_PASSES)
    return report.claimed


async def sweep(context: procrastinate.JobContext, timestamp: int) -> int:
    async with deliverer_for(runtime_of(context)) as deliverer:
        report = await deliverer.run_until_idle(max_passes=DRAIN_PASSES)
    return report.claimed


async def purge(context: procrastinate.JobContext, timestamp: int) -> None:
    runtime = runtime_of(context)
    settings = webhook_settings(runtime.settings)
    async with runtime.database.transaction() as session:
        attempts, events = await purge_expired(
            session,
            runtime.clock.now(),
            log_retention=settings.log_retention,
            event_retention=settings.event_retention,
        )
    log.info("webhook retention applied", extra={"attempts": attempts, "events": events})


def make_blueprint() -> procrastinate.Blueprint:
    """The webhook tasks, registered by the job app under the namespace `webhooks`."""
    blueprint = procrastinate.Blueprint()
    blueprint.task(name="deliver_event", pass_context=True)(deliver_event)
    sweep_task = blueprint.task(name="sweep", pass_context=True, queueing_lock="webhooks_sweep")(
        sweep
    )
    blueprint.periodic(cron=SWEEP_CRON, periodic_id="webhooks_sweep")(sweep_task)
    purge_task = blueprint.task(name="purge", pass_context=True, queueing_lock="webhooks_purge")(
        purge
    )
    blueprint.periodic(cron=PURGE_CRON, periodic_id="webhooks_purge")(purge_task)
    return blueprint
