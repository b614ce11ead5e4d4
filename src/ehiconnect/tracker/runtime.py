"""What tracker code needs at run time: its settings, the database, its job queue, storage, time.

    async with TrackerRuntime.open(tracker_settings, database_url, data_dir) as tracker:
        context = tracker.job_context()
        await tracker.jobs.run_worker_async(queues=[QUEUE], additional_context=context)

Opening it brings the tracker's tables up to date (its own migration history). Its job app holds
the tracker's tasks only; they run on the tracker's worker (`ehiconnect tracker serve` or
`tracker worker`), which puts the runtime in their job context, where `tracker_of` finds it. The
platform's worker knows nothing of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import procrastinate

from ehiconnect.clock import Clock, SystemClock
from ehiconnect.db.database import Database
from ehiconnect.db.pools import ProcessRole
from ehiconnect.readiness import ReadinessChecker
from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.storage.port import BlobStore
from ehiconnect.tracker.client import PlatformClient
from ehiconnect.tracker.migrate import TRACKER_MIGRATIONS, upgrade_tracker_database
from ehiconnect.tracker.settings import TrackerSettings

CONTEXT_KEY = "tracker"
QUEUE = "tracker"


@dataclass
class TrackerRuntime:
    settings: TrackerSettings
    database: Database
    jobs: procrastinate.App
    clock: Clock
    blobs: BlobStore
    data_dir: Path

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        settings: TrackerSettings,
        database_url: str,
        data_dir: Path,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
    ) -> AsyncIterator[TrackerRuntime]:
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
                yield cls(
                    settings=settings,
                    database=database,
                    jobs=jobs,
                    clock=clock or SystemClock(),
                    blobs=build_tracker_store(settings, data_dir),
                    data_dir=data_dir,
                )
        finally:
            await database.close()

    def job_context(self) -> dict[str, object]:
        """The worker's `additional_context` for the tracker's tasks (see `tracker_of`)."""
        return {CONTEXT_KEY: self}

    @functools.cached_property
    def readiness(self) -> ReadinessChecker:
        """The checks behind /readyz: the database with the tracker's own schema at its head,
        and the tracker's storage."""
        return ReadinessChecker(self.database, self.blobs, migrations=TRACKER_MIGRATIONS)

    def platform(self) -> PlatformClient:
        return PlatformClient(
            self.settings.platform_base_url,
            self.settings.public_id,
            self.settings.private_key.get_secret_value(),
        )

    @property
    def partial_dir(self) -> Path:
        return self.data_dir / "tracker-partial"

    @property
    def parquet_dir(self) -> Path:
        return self.settings.parquet_dir or self.data_dir / "parquet"


def build_tracker_job_app(database_url: str) -> procrastinate.App:
    """A job app with only the tracker's tasks (namespace `tracker`), for the tracker process."""
    from ehiconnect.tracker.tasks import make_blueprint

    connector = procrastinate.PsycopgConnector(conninfo=database_url, min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    app.add_tasks_from(make_blueprint(), namespace="tracker")
    return app


def build_tracker_store(settings: TrackerSettings, data_dir: Path) -> BlobStore:
    if settings.storage == "s3":
        from ehiconnect.storage.s3 import S3BlobStore

        if not settings.s3_bucket:
            raise ValueError("tracker.storage is s3 but tracker.s3_bucket is not set")
        secret = settings.s3_secret_access_key
        return S3BlobStore.connect(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region or "us-east-1",
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            # The setting reads like a folder ("tracker/"); a store prefix is a key's segments.
            prefix=settings.s3_prefix.strip("/"),
        )
    return LocalBlobStore(settings.storage_dir or data_dir / "tracker")


def tracker_of(context: procrastinate.JobContext) -> TrackerRuntime:
    """The tracker runtime a running task was given by its worker (`TrackerRuntime.job_context`)."""
    given = context.additional_context.get(CONTEXT_KEY)
    if not isinstance(given, TrackerRuntime):
        raise RuntimeError(
            "this tracker task needs the tracker's runtime in its job context: run it with "
            "`ehiconnect tracker serve` or `ehiconnect tracker worker`, not a platform worker"
        )
    return given
