"""Every part of the system, run inside the demo's own process, and stopped with it.

`ehiconnect up` starts child processes; the demo runs the same parts in one process instead (the
servers on loopback ports in threads, the two job workers as tasks of its event loop), so a
failure, Ctrl-C or the end of the demo stops all of them together and nothing is left behind.
Parts still talk to each other only over HTTP and the database, as they do when deployed apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import procrastinate

from ehiconnect.api.app import create_app
from ehiconnect.cli.demo_logic import DemoFailed
from ehiconnect.cli.demo_ports import Listener, listeners
from ehiconnect.db.embedded import embedded_pgdata, stop_embedded_postgres
from ehiconnect.jobs.worker import PLATFORM_QUEUES
from ehiconnect.runtime import Runtime, database_url
from ehiconnect.sandbox import build_sandbox_app
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker.process import open_tracker
from ehiconnect.tracker.receiver import build_tracker_app
from ehiconnect.tracker.runtime import QUEUE, TrackerRuntime
from ehiconnect.tracker.settings import TrackerSettings
from ehiconnect.webhooks.senders import dispatching

# How long a stopping worker lets a running job finish. One still running then (an export
# interrupted by Ctrl-C) is cancelled and marked aborted; a later demo run starts afresh.
WORKER_GRACE_SECONDS = 10.0
# The platform worker polls as often as the tracker's (`tracker.worker_poll_seconds`): a job's
# follow-up queued under its lock would otherwise wait for procrastinate's 5 s poll.
PLATFORM_POLL_SECONDS = 0.5


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL. An embedded server that this block started is stopped at its end; one
    that was already running (another process may use it) is left running."""
    if settings.database_url is not None:
        yield database_url(settings)
        return
    was_running = (embedded_pgdata(settings.data_dir) / "postmaster.pid").exists()
    url = database_url(settings)
    try:
        yield url
    finally:
        if not was_running:
            stop_embedded_postgres(settings.data_dir)


@dataclass
class DemoServices:
    runtime: Runtime
    tracker: TrackerRuntime
    urls: dict[str, str]
    workers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def check_workers(self) -> None:
        """DemoFailed when a job worker stopped on its own (its jobs would never run)."""
        for name, task in self.workers.items():
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise DemoFailed(
                    f"the {name} stopped unexpectedly: {error!r}",
                    "run again with --verbose to see the logs",
                )


@contextlib.asynccontextmanager
async def run_services(
    runtime: Runtime, url: str, tracker_settings: TrackerSettings
) -> AsyncIterator[DemoServices]:
    """Serve the sandbox, the platform API and the tracker; run the platform's and the
    tracker's job workers and the platform's webhook dispatcher. All stop when the block ends,
    in reverse order."""
    settings = runtime.settings
    sandbox, api, tracker_listener = listeners(settings, tracker_settings)
    data_dir = settings.data_dir
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_serving(sandbox, build_sandbox_app()))
        stack.enter_context(_serving(api, create_app(settings)))
        tracker_app = build_tracker_app(
            lambda: open_tracker(tracker_settings, url, data_dir), tracker_settings
        )
        stack.enter_context(_serving(tracker_listener, tracker_app))
        tracker = await stack.enter_async_context(open_tracker(tracker_settings, url, data_dir))
        services = DemoServices(
            runtime=runtime,
            tracker=tracker,
            urls={"sandbox": sandbox.url, "api": api.url, "tracker": tracker_listener.url},
        )
        concurrency = settings.jobs.concurrency
        services.workers["platform worker"] = await stack.enter_async_context(
            _working(
                runtime.jobs,
                "demo-platform",
                PLATFORM_QUEUES,
                runtime.job_context(),
                concurrency,
                PLATFORM_POLL_SECONDS,
            )
        )
        services.workers["webhook dispatcher"] = await stack.enter_async_context(
            dispatching(runtime.webhooks)
        )
        services.workers["tracker worker"] = await stack.enter_async_context(
            _working(
                tracker.jobs,
                "demo-tracker",
                (QUEUE,),
                tracker.job_context(),
                concurrency,
                tracker.settings.worker_poll_seconds,
            )
        )
        yield services


@contextlib.contextmanager
def _serving(listener: Listener, app: Any) -> Iterator[ThreadedServer]:
    server = ThreadedServer(app, host=listener.host, port=listener.port)
    try:
        server.start()
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise DemoFailed(
            f"the {listener.role} could not start on {listener.url}: {exc}",
            "run again with --verbose to see why",
        ) from None
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def _working(
    jobs: procrastinate.App,
    name: str,
    queues: tuple[str, ...],
    context: dict[str, Any],
    concurrency: int,
    poll_seconds: float,
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(
        jobs.run_worker_async(
            name=name,
            queues=list(queues),
            concurrency=concurrency,
            fetch_job_polling_interval=poll_seconds,
            additional_context=context,
            install_signal_handlers=False,
            shutdown_graceful_timeout=WORKER_GRACE_SECONDS,
        ),
        name=name,
    )
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
