"""The webhooks feature's one job: `purge` applies attempt-log and event retention, hourly.

Deliveries are not jobs: each `ehiconnect worker` runs a Dispatcher beside its queue (see
`dispatcher` and `senders`) that wakes on NOTIFY and when the next delivery falls due.
"""

from __future__ import annotations

import logging

import procrastinate

from ehiconnect.queue.context import ports_of
from ehiconnect.webhooks.history import purge_expired
from ehiconnect.webhooks.ports import WebhookPorts

log = logging.getLogger(__name__)

PURGE_CRON = "17 * * * *"


async def purge(context: procrastinate.JobContext, timestamp: int) -> None:
    ports = ports_of(context, WebhookPorts)
    async with ports.database.transaction() as session:
        attempts, events = await purge_expired(
            session,
            ports.clock.now(),
            log_retention=ports.settings.log_retention,
            event_retention=ports.settings.event_retention,
        )
    log.info("webhook retention applied", extra={"attempts": attempts, "events": events})


def make_blueprint() -> procrastinate.Blueprint:
    """The webhook tasks, registered by the job app under the namespace `webhooks`."""
    blueprint = procrastinate.Blueprint()
    purge_task = blueprint.task(name="purge", pass_context=True, queueing_lock="webhooks_purge")(
        purge
    )
    blueprint.periodic(cron=PURGE_CRON, periodic_id="webhooks_purge")(purge_task)
    return blueprint
