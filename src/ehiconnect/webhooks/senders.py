"""The process's webhook senders, built from its `WebhookPorts`.

A worker runs a `Dispatcher` (`dispatcher_for`) around a `Deliverer` opened for its lifetime
(`deliverer_for`): it sends each delivery as soon as it falls due. The demo, which runs every
part as a task of one event loop, runs one with `dispatching`. A process that runs the job queue
until it is empty and then stops (tests, `run_worker(wait=False)`) has no dispatcher listening:
it calls `deliver_due` once the queue is empty, which sends everything due at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ehiconnect.webhooks.delivery import Deliverer, PassReport
from ehiconnect.webhooks.dispatcher import Dispatcher
from ehiconnect.webhooks.ports import WebhookPorts
from ehiconnect.webhooks.wakeup import WakeupListener


def deliverer_for(ports: WebhookPorts) -> Deliverer:
    """A Deliverer on the process's database, clock, vault and webhook settings; open it with
    `async with` to keep receiver connections alive from one pass to the next."""
    return Deliverer(ports.database, ports.clock, ports.settings, ports.cipher)


def dispatcher_for(ports: WebhookPorts, deliverer: Deliverer) -> Dispatcher:
    """A dispatcher around an opened Deliverer, listening on the process's database."""
    listener = WakeupListener(ports.database.url, ports.settings)
    return Dispatcher(deliverer, ports.clock, ports.settings, listener)


async def deliver_due(ports: WebhookPorts) -> PassReport:
    """Send every delivery due now, oldest first, in passes until one finds nothing more due;
    what was sent. For processes without a dispatcher (the queue drained, then this)."""
    async with deliverer_for(ports) as deliverer:
        return await deliverer.run_until_idle()


@contextlib.asynccontextmanager
async def dispatching(ports: WebhookPorts) -> AsyncIterator[asyncio.Task[None]]:
    """A dispatcher running as a task of this event loop for the block's length; the task, to
    watch for an early end. Leaving the block stops it once its passes in flight are recorded."""
    async with deliverer_for(ports) as deliverer:
        dispatcher = dispatcher_for(ports, deliverer)
        task = asyncio.create_task(dispatcher.run(), name="webhooks dispatcher")
        try:
            yield task
        finally:
            dispatcher.stop()
            await asyncio.gather(task, return_exceptions=True)
