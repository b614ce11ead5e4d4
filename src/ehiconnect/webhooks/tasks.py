"""Webhook jobs and the worker's dispatcher, built on the worker's runtime.

Deliveries are sent by the Dispatcher each `ehiconnect worker` runs (see `dispatcher`): it wakes on
NOTIFY and when the next delivery falls due. `emit` still enqueues a `deliver_event` job, for
processes that run the queue without a dispatcher (tests draining it with `wait=False`): there the
job sends whatever is due; in a worker with a dispatcher it does nothing, the dispatcher having
heard the same transaction's NOTIFY. `sweep` does the same and is no longer scheduled (the
dispatcher's sweep interval replaced its cron); it stays registered for jobs queued before that
change. `purge` applies log and event retention.
"""

from __future__ import annotations

import logging

import procrastinate

from ehiconnect.queue.context import runtime_of
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings, WebhookSettings
from ehiconnect.webhooks.delivery import Deliverer
from ehiconnect.webhooks.dispatcher import Dispatcher
from ehiconnect.webhooks.history import purge_expired
from ehiconnect.webhooks.wakeup import WakeupListener

log = logging.getLogger(__name__)

DRAIN_PASSES = 20
PURGE_CRON = "17 * * * *"
DISPATCHER_KEY = "webhooks.dispatcher"  # the worker's Dispatcher in the job context


def webhook_settings(settings: Settings) -> WebhookSettings:
    """The `webhooks` section of the settings."""
    return settings.webhooks


def deliverer_for(runtime: Runtime) -> Deliverer:
    return Deliverer(
        runtime.database, runtime.clock, webhook_settings(runtime.settings), runtime.cipher
    )


def dispatcher_for(runtime: Runtime, deliverer: Deliverer) -> Dispatcher:
    """A dispatcher around an opened Deliverer, listening on the runtime's database."""
    settings = webhook_settings(runtime.settings)
    listener = WakeupListener(runtime.database.url, settings)
    return Dispatcher(deliverer, runtime.clock, settings, listener)


async def deliver_event(context: procrastinate.JobContext, event_id: str) -> int:
    return await _deliver_due(context)


async def sweep(context: procrastinate.JobContext, timestamp: int) -> int:
    return await _deliver_due(context)


async def _deliver_due(context: procrastinate.JobContext) -> int:
    dispatcher = context.additional_context.get(DISPATCHER_KEY)
    if isinstance(dispatcher, Dispatcher) and dispatcher.running:
        # Nothing to do: the dispatcher heard the NOTIFY of the transaction that queued this job
        # (or, if its listener was reconnecting then, looked for due work once it listened again).
        return 0
    # Everything due, oldest first, not just this event: in a burst the first jobs send whole
    # batches and the later ones find their event already delivered.
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
    blueprint.task(name="sweep", pass_context=True, queueing_lock="webhooks_sweep")(sweep)
    purge_task = blueprint.task(name="purge", pass_context=True, queueing_lock="webhooks_purge")(
        purge
    )
    blueprint.periodic(cron=PURGE_CRON, periodic_id="webhooks_purge")(purge_task)
    return blueprint
