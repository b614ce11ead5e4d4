"""What tracker code needs at run time: its settings, the database, its job queue, storage, time.

A process gets one from `process.open_tracker` (which migrates, and builds the job app with the
tracker's tasks); the steps and tasks take it. Its jobs run on the tracker's worker only
(`ehiconnect tracker serve` or `tracker worker`), which puts the runtime in their job context
(`job_context`), where `tracker_of` finds it. The platform's worker knows nothing of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import procrastinate

from ehiconnect.clock import Clock
from ehiconnect.db.database import Database
from ehiconnect.readiness import ReadinessChecker
from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.storage.port import BlobStore
from ehiconnect.tracker.client import PlatformClient
from ehiconnect.tracker.migrate import TRACKER_MIGRATIONS
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
