"""Tracker fixtures: the fake platform and the tracker receiver on loopback, a real PostgreSQL
holding the tracker's tables (its own migrations, applied to each test's copy of the template)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker.migrate import upgrade_tracker_database
from ehiconnect.tracker.process import open_tracker
from ehiconnect.tracker.receiver import build_tracker_app
from ehiconnect.tracker.runtime import QUEUE, TrackerRuntime
from ehiconnect.tracker.settings import RetryPolicy, TrackerSettings
from tests.integration.tracker.fake_platform import (
    PRIVATE_KEY,
    PUBLIC_ID,
    WEBHOOK_SECRET,
    FakePlatform,
)

STITCH_TOKEN = "stitch-token-for-tests"
FHIR_TOKEN = "fhir-api-token-for-tests"
FHIR_AUTH = {"Authorization": f"Bearer {FHIR_TOKEN}"}


@pytest.fixture
def database_url(database_url: str) -> str:
    """The test's database with the tracker's tables, for tests that write them before a
    tracker opens (opening one migrates too)."""
    upgrade_tracker_database(database_url)
    return database_url


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    fake = FakePlatform()
    with serve_in_thread(fake.app()) as server:
        fake.base_url = server.url
        yield fake


@pytest.fixture
def tracker_settings(platform: FakePlatform, tmp_path: Path) -> TrackerSettings:
    return TrackerSettings(
        platform_base_url=f"{platform.base_url}/v1",
        public_id=PUBLIC_ID,
        private_key=PRIVATE_KEY,
        webhook_secrets=[WEBHOOK_SECRET],
        stitch_events_token=STITCH_TOKEN,
        fhir_api_token=FHIR_TOKEN,
        retry=RetryPolicy(backoff_seconds=[0.0, 0.0, 0.0]),
        storage_dir=tmp_path / "store",
        parquet_enabled=True,
        parquet_dir=tmp_path / "parquet",
        ingest_batch_size=10,
    )


@pytest.fixture
async def tracker(
    tracker_settings: TrackerSettings, database_url: str, tmp_path: Path
) -> AsyncIterator[TrackerRuntime]:
    async with open_tracker(tracker_settings, database_url, tmp_path) as opened:
        yield opened


@pytest.fixture
def receiver(
    tracker_settings: TrackerSettings, database_url: str, tmp_path: Path
) -> Iterator[ThreadedServer]:
    app = build_tracker_app(
        lambda: open_tracker(tracker_settings, database_url, tmp_path), tracker_settings
    )
    with serve_in_thread(app) as server:
        yield server


async def drain(tracker: TrackerRuntime) -> None:
    """Run every due tracker job until the queue is empty (a worker with wait=False)."""
    await tracker.jobs.run_worker_async(
        queues=[QUEUE],
        wait=False,
        install_signal_handlers=False,
        additional_context=tracker.job_context(),
    )
