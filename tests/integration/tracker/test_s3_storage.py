"""The tracker with `storage = "s3"`, over a real S3 API (`rclone serve s3`, SigV4 enforced).

S3 cannot append, so a download is built in a local partial file (resumed with Range after a
cut), checked, uploaded under `downloads/<job_id>/<n>.ndjson` and removed; ingestion and the
FHIR API read it back from S3, and the retention purge deletes every object of the job.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ehiconnect.fhir.binary import binary_line_parts
from ehiconnect.storage.s3 import S3BlobStore
from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker.download_step import purge_downloads
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerFhirResource
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import TrackerSettings
from tests.integration.tracker.conftest import FHIR_AUTH, drain
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import count, forward, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson
from tests.integration.tracker.test_download import retry_now
from tests.support import s3_server as s3_support
from tests.support.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

pytestmark = pytest.mark.integration
s3_server = s3_support.s3_server  # the rclone S3 fixture (module scope)

THRESHOLD = 64 * 1024  # a Binary line longer than this is lifted into its own S3 object


@pytest.fixture
def tracker_settings(tracker_settings: TrackerSettings, s3_server: S3Server) -> TrackerSettings:
    """The tracker's test settings with S3 storage, the default prefix ("tracker/") kept."""
    tracker_settings.storage = "s3"
    tracker_settings.s3_bucket = BUCKET
    tracker_settings.s3_endpoint_url = s3_server.endpoint_url
    tracker_settings.s3_access_key_id = ACCESS_KEY
    tracker_settings.s3_secret_access_key = SecretStr(SECRET_KEY)
    tracker_settings.inline_data_max_bytes = THRESHOLD
    return tracker_settings


def _bucket(s3_server: S3Server) -> S3BlobStore:
    """The bucket as the tracker sees it, through its own S3 client."""
    return s3_server.store(prefix="tracker")


def _objects_of(s3_server: S3Server, job_id: str) -> list[str]:
    folder = s3_server.root / BUCKET / "tracker" / "downloads" / job_id
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _local_files(tmp_path: Path) -> list[str]:
    """Files the tracker left on local disk (its partial files, or a local store)."""
    return sorted(
        str(p.relative_to(tmp_path))
        for folder in (tmp_path / "tracker-partial", tmp_path / "store")
        for p in folder.rglob("*")
        if p.is_file()
    )


async def _exported(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> tuple[str, str]:
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    return connection_id, platform.task_for(connection_id).task_id


async def test_export_is_stored_in_s3_resumed_ingested_and_purged(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    payload = os.urandom(300_000)
    scan = b"".join(binary_line_parts("scan-1", "application/dicom", None, [payload]))
    body = to_ndjson(patient_record(observations=2000)) + scan  # 2,005 resources
    data = platform.complete(task_id, body)
    platform.cut_next_download_after = len(body) // 2

    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, job.failure_description
    first, resumed = platform.download_ranges
    assert first is None
    assert resumed is not None
    assert 0 < int(resumed.removeprefix("bytes=").rstrip("-")) < len(body)
    [file] = job.files
    sha256 = hashlib.sha256(body).hexdigest()
    assert (file["key"], file["size"], file["sha256"]) == (
        f"downloads/{job.job_id}/0.ndjson",
        len(body),
        sha256,
    )
    bucket = _bucket(s3_server)
    stored = b"".join([chunk async for chunk in bucket.open_reader(file["key"])])
    assert hashlib.sha256(stored).hexdigest() == sha256
    assert _local_files(tmp_path) == []  # the partial file went once uploaded; no local store
    assert await count(tracker, TrackerFhirResource) == 2005
    # The lifted payload is an S3 object too, streamed back by the tracker's FHIR API.
    raw = httpx.get(f"{receiver.url}/fhir/Binary/scan-1", headers=FHIR_AUTH, timeout=10)
    assert raw.status_code == 200
    assert raw.content == payload
    objects = _objects_of(s3_server, job.job_id)
    assert "0.ndjson" in objects
    assert len(objects) > 1  # and what the ingest step lifted out of it

    assert await purge_downloads(tracker) == 0  # within retention
    async with tracker.database.transaction() as session:
        row = await session.get(type(job), job.job_id)
        assert row is not None
        row.files_expire_at = tracker.clock.now()
    assert await purge_downloads(tracker) == 1

    assert _objects_of(s3_server, job.job_id) == []
    assert await bucket.stat(file["key"]) is None
    assert (await job_of(tracker, connection_id)).state == JobState.INGESTED


async def test_a_download_that_fails_for_good_leaves_nothing_locally_or_in_s3(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    tracker.settings.retry.backoff_seconds = [3600.0]  # one retry, an hour later
    connection_id, task_id = await _exported(platform, receiver, tracker)
    body = to_ndjson(patient_record(observations=2000))
    data = platform.complete(task_id, body)
    platform.cut_next_download_after = len(body) // 2

    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.DOWNLOADING  # the retry waits for its hour
    [partial] = _local_files(tmp_path)  # the bytes kept for the resume, on local disk
    assert partial == f"tracker-partial/{job.job_id}/0.part"
    kept = (tmp_path / partial).stat().st_size
    assert 0 < kept < len(body)
    assert _objects_of(s3_server, job.job_id) == []

    platform.cut_next_download_after = 1000  # the last attempt is cut too
    await retry_now(tracker, job.job_id)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert (job.state, job.failure_reason) == (JobState.FAILED, "attempts_exhausted")
    assert platform.download_ranges[-1] == f"bytes={kept}-"  # it did resume
    assert _local_files(tmp_path) == []  # no retention would ever reach a partial file
    assert not (tmp_path / "tracker-partial" / job.job_id).exists()
    assert _objects_of(s3_server, job.job_id) == []
