"""What a tracker process opens: its tables brought up to date, its database, its job app.

    async with open_tracker(tracker_settings, database_url, data_dir) as tracker:
        context = tracker.job_context()
        await tracker.jobs.run_worker_async(queues=[QUEUE], additional_context=context)

The composition of the tracker, above everything else in it: the job app it builds holds the
tracker's tasks (namespace and queue `tracker`), and the tasks take the runtime it yields.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import procrastinate

from ehiconnect.clock import Clock, SystemClock
from ehiconnect.db.database import Database
from ehiconnect.db.roles import ProcessRole
from ehiconnect.tracker.migrate import upgrade_tracker_database
from ehiconnect.tracker.runtime import TrackerRuntime, build_tracker_store
from ehiconnect.tracker.settings import TrackerSettings
from ehiconnect.tracker.tasks import make_blueprint


@contextlib.asynccontextmanager
async def open_tracker(
    settings: TrackerSettings,
    database_url: str,
    data_dir: Path,
    *,
    clock: Clock | None = None,
    migrate: bool = True,
) -> AsyncIterator[TrackerRuntime]:
    """The tracker's runtime for the block, after its migrations (unless `migrate` is False)."""
    if migrate:
        await asyncio.to_thread(upgrade_tracker_database, database_url)
    database = Database(
        database_url,
        pool_size=4,
        max_overflow=4,
        connect_args={"application_name": ProcessRole.TRACKER.application_name},
    )
    jobs = build_tracker_job_app(database_url)
    try:
        async with jobs.open_async():
            yield TrackerRuntime(
                settings=settings,
                database=database,
                jobs=jobs,
                clock=clock or SystemClock(),
                blobs=build_tracker_store(settings, data_dir),
                data_dir=data_dir,
            )
    finally:
        await database.close()


def build_tracker_job_app(database_url: str) -> procrastinate.App:
    """A job app with only the tracker's tasks (namespace `tracker`), for the tracker process."""
    connector = procrastinate.PsycopgConnector(conninfo=database_url, min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    app.add_tasks_from(make_blueprint(), namespace="tracker")
    return app
