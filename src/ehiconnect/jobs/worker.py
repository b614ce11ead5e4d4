"""The `ehiconnect worker` process: runs queued jobs with each feature's ports in their context,
and the webhook dispatcher beside them."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os

from ehiconnect import metrics
from ehiconnect.crawler.fetch import load_tls_context
from ehiconnect.db.pools import ProcessRole
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.tracing import install as install_tracing
from ehiconnect.webhooks.senders import deliver_due, deliverer_for, dispatcher_for

log = logging.getLogger(__name__)


# What `tune_malloc` sets: (environment variable, glibc tunable, mallopt parameter, value).
MALLOC_SETTINGS = (
    ("MALLOC_ARENA_MAX", "glibc.malloc.arena_max", -8, 2),
    ("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold", -3, 4 << 20),
    ("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold", -1, 16 << 20),
)
PLATFORM_QUEUES = ("default",)
YOUNG_GC_THRESHOLD = 20_000  # allocations between two young-generation collections


def collect_young_less_often() -> None:
    """Collect the cyclic garbage collector's youngest generation every 20,000 net allocations
    rather than Python's default 700. A worker sending webhooks keeps its passes' requests alive
    while they are in flight, and each young collection walked all of them: 11-13% of a
    worker's CPU at 1,000 deliveries/s, 4% with this (#17). Objects freed by reference counting,
    nearly all of them, are freed as before."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


def tune_malloc() -> None:
    """Set glibc's malloc up for a worker that moves large buffers between threads, before its
    threads start. Each setting is skipped when the operator set it (`MALLOC_*` variables or
    `GLIBC_TUNABLES`); off glibc nothing happens.

    - At most 2 per-thread arenas: downloads hand buffers to file-writing threads, and with
      glibc's default of up to 8 arenas per core freed buffers stayed resident across arenas
      (measured: 202 MiB peak RSS for a 3 GB export at the default, 188 MiB with 2).
    - Buffers up to 4 MiB (a download's 1.5 MiB chunks and their 2 MiB base64) come from the heap,
      and up to 16 MiB of freed heap is kept for the next ones: glibc otherwise mapped each
      buffer anew and unmapped it when freed, and every page of every buffer was faulted in and
      zeroed again (#17, hugo export: 582,000 minor faults -> 75,000, about 1 s less kernel
      CPU). 32 MiB kept gave 37,500, measured with packaging's larger buffers of the time (8
      chunks in flight, 4 read ahead), when the peak RSS reached 190-194 MiB: all three were
      lowered together, so that figure is not the 32 MiB's alone.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        log.debug("glibc is not available; malloc left at its defaults")
        return
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    for variable, tunable, parameter, value in MALLOC_SETTINGS:
        if os.environ.get(variable) or tunable in tunables:
            continue
        with contextlib.suppress(AttributeError):
            libc.mallopt(parameter, value)


async def run_worker(settings: Settings, *, name: str = "worker", wait: bool = True) -> None:
    """Run the platform's queue, and the webhook dispatcher beside it, until stopped.

    With `wait=False` the queue is run until it is empty, then the webhook deliveries due are
    sent (passes until none is left) and it returns: no dispatcher is started.
    """
    tune_malloc()
    collect_young_less_often()
    install_tracing(settings.otel, role="worker")
    # Beside the runtime's start, not in the first export (whose crawl would wait for it).
    tls_loaded = asyncio.ensure_future(asyncio.to_thread(load_tls_context))
    async with (
        Runtime.open(settings, role=ProcessRole.WORKER) as runtime,
        metrics.exposed(
            runtime.database, host=settings.jobs.metrics_host, port=settings.jobs.metrics_port
        ),
    ):
        await tls_loaded
        log.info("worker started", extra={"concurrency": settings.jobs.concurrency})
        if not wait:
            await _run_queue(runtime, name=name, wait=False)
            await deliver_due(runtime.webhooks)
            return
        async with deliverer_for(runtime.webhooks) as deliverer:
            dispatcher = dispatcher_for(runtime.webhooks, deliverer)
            # If the dispatcher fails, the group cancels the queue worker (which stops
            # gracefully) and the process exits with the error, for its supervisor to restart.
            async with asyncio.TaskGroup() as group:
                group.create_task(dispatcher.run(), name="webhooks dispatcher")
                try:
                    await _run_queue(runtime, name=name, wait=True)
                finally:
                    dispatcher.stop()  # the passes in flight finish and are recorded first


async def _run_queue(runtime: Runtime, *, name: str, wait: bool) -> None:
    settings = runtime.settings
    await runtime.jobs.run_worker_async(
        name=name,
        wait=wait,
        concurrency=settings.jobs.concurrency,
        # The platform's queues only: another product sharing the database runs its own worker.
        queues=list(PLATFORM_QUEUES),
        additional_context=runtime.job_context(),
        update_heartbeat_interval=settings.jobs.heartbeat_seconds,
        stalled_worker_timeout=settings.jobs.stalled_after_seconds,
        install_signal_handlers=True,
        # SIGTERM: take no new job, let running ones finish for this long, then abort them;
        # an aborted job is retried by the next worker (an export resumes from its staging).
        shutdown_graceful_timeout=settings.jobs.shutdown_grace_seconds,
    )
