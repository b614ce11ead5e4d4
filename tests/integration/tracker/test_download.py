"""Downloads into local storage: built in the store's own staging file, committed by a rename.

A multi-GB export must be written to disk once: the partial file of a download is the store's
hidden staging file beside its key, resumed with Range after a cut, hashed as it arrives, and
renamed over the key once its sha256 and size match.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker.client import PlatformClient, PlatformUnavailable
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerFhirResource
from ehiconnect.tracker.runtime import TrackerRuntime
from tests.integration.tracker.conftest import drain
from tests.integration.tracker.fake_platform import PRIVATE_KEY, PUBLIC_ID, FakePlatform, FakeTask
from tests.integration.tracker.helpers import count, forward, job_events, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson

pytestmark = pytest.mark.integration


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


async def retry_now(tracker: TrackerRuntime, job_id: str) -> None:
    """Bring a job's scheduled retry forward to now (as if its delay had passed)."""
    async with tracker.database.transaction() as session:
        moved = await session.execute(
            text(
                "update procrastinate_jobs set scheduled_at = now() "
                "where status = 'todo' and lock = :lock and scheduled_at > now()"
            ),
            {"lock": f"tracker-job-{job_id}"},
        )
        assert getattr(moved, "rowcount", 0) == 1


async def _cut_download(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, body: bytes
) -> str:
    """A job whose first download attempt was cut mid-file; its retry is an hour away."""
    tracker.settings.retry.backoff_seconds = [3600.0]
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    data = platform.complete(platform.task_for(connection_id).task_id, body)
    platform.cut_next_download_after = len(body) // 2
    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.DOWNLOADING
    return connection_id


async def test_local_download_resumes_in_the_store_and_is_committed_by_a_rename(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, tmp_path: Path
) -> None:
    body = to_ndjson(patient_record(observations=2000))
    connection_id = await _cut_download(platform, receiver, tracker, body)
    job = await job_of(tracker, connection_id)
    folder = tmp_path / "store" / "downloads" / job.job_id
    partial = folder / ".0.ndjson.partial"
    kept = partial.stat().st_size
    assert 0 < kept < len(body)
    assert stat.S_IMODE(partial.stat().st_mode) == 0o600  # PHI, even half-downloaded
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    inode = partial.stat().st_ino
    assert await tracker.blobs.stat(f"downloads/{job.job_id}/0.ndjson") is None
    assert _files_under(tmp_path / "tracker-partial") == []

    await retry_now(tracker, job.job_id)
    await drain(tracker)

    assert platform.download_ranges == [None, f"bytes={kept}-"]
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, job.failure_description
    [file] = job.files
    committed = tmp_path / "store" / file["key"]
    assert committed.stat().st_ino == inode  # the partial file itself: renamed, never copied
    assert hashlib.sha256(committed.read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()
    assert (file["size"], file["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert _files_under(folder) == ["0.ndjson"]
    assert await count(tracker, TrackerFhirResource) == 2004


async def test_files_gone_after_a_cut_discard_the_partial_and_export_again(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, tmp_path: Path
) -> None:
    connection_id = await _cut_download(
        platform, receiver, tracker, to_ndjson(patient_record(observations=2000))
    )
    job = await job_of(tracker, connection_id)
    assert job.task_id is not None
    platform.tasks[job.task_id].status = "expired"  # the platform's retention passed meanwhile

    await retry_now(tracker, job.job_id)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert ("download", "files_gone") in await job_events(tracker, job.job_id)
    assert job.state == JobState.EXPORT_REQUESTED
    assert job.export_requests == 2
    # The new export's file will differ: nothing of the old one may be resumed or kept.
    assert _files_under(tmp_path / "store") == []


@pytest.fixture
def served(platform: FakePlatform) -> tuple[str, bytes]:
    """A finished export on the fake platform: its download URL and body."""
    body = os.urandom(3 * 1024 * 1024 + 7)
    platform.tasks["t1"] = FakeTask(task_id="t1", org_connection_id="c1", status="success")
    platform.tasks["t1"].body = body
    return f"{platform.base_url}/v1/bridge/fhir/ehi-export/t1/download/f1", body


async def test_a_second_download_into_a_file_in_use_is_refused_not_interleaved(
    platform: FakePlatform, served: tuple[str, bytes], tmp_path: Path
) -> None:
    url, body = served
    partial = tmp_path / "partial" / "0.part"
    partial.parent.mkdir()
    partial.write_bytes(body[:1000])
    sha256 = hashlib.sha256(body).hexdigest()
    async with PlatformClient(f"{platform.base_url}/v1", PUBLIC_ID, PRIVATE_KEY) as client:
        with partial.open("rb") as held:  # another worker, downloading the same file
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            with pytest.raises(PlatformUnavailable, match="another download"):
                await client.download(url, partial, expected_sha256=sha256)
        assert partial.read_bytes() == body[:1000]
        assert platform.download_ranges == []

        done = await client.download(url, partial, expected_sha256=sha256, expected_size=len(body))
    assert (done.size, done.sha256, done.resumed_from) == (len(body), sha256, 1000)
    assert platform.download_ranges == ["bytes=1000-"]


@pytest.fixture
def range_ignoring_server() -> Iterator[tuple[str, bytes]]:
    """A file server that answers every request with the whole file (200), Range or not."""
    body = os.urandom(2 * 1024 * 1024 + 3)

    async def whole(request: Request) -> Response:
        return Response(body, headers={"X-Content-SHA256": hashlib.sha256(body).hexdigest()})

    with serve_in_thread(Starlette(routes=[Route("/file", whole)])) as server:
        yield f"{server.url}/file", body


@pytest.mark.parametrize("kept", ["a prefix of other bytes", "more bytes than announced"])
async def test_kept_bytes_that_cannot_be_resumed_are_replaced_and_rehashed(
    range_ignoring_server: tuple[str, bytes], tmp_path: Path, kept: str
) -> None:
    url, body = range_ignoring_server
    partial = tmp_path / "0.part"
    partial.write_bytes(os.urandom(5000 if kept.startswith("a prefix") else len(body) + 10))
    async with PlatformClient(url, PUBLIC_ID, PRIVATE_KEY) as client:
        done = await client.download(url, partial, expected_size=len(body))
    assert (done.size, done.resumed_from) == (len(body), 0)
    assert done.sha256 == hashlib.sha256(body).hexdigest()  # the sha256 header, checked
    assert partial.read_bytes() == body
