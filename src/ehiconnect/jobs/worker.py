"""The `ehiconnect worker` process: runs queued jobs with the runtime in their context."""

from __future__ import annotations

import logging

from ehiconnect.jobs.context import RUNTIME_KEY
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, *, name: str = "worker", wait: bool = True) -> None:
    async with Runtime.open(settings) as runtime:
        log.info("worker started", extra={"concurrency": settings.jobs.concurrency})
        await runtime.jobs.run_worker_async(
            name=name,
            wait=wait,
            concurrency=settings.jobs.concurrency,
            additional_context={RUNTIME_KEY: runtime},
            update_heartbeat_interval=settings.jobs.heartbeat_seconds,
            stalled_worker_timeout=settings.jobs.stalled_after_seconds,
            install_signal_handlers=True,
        )
