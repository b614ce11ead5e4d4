"""Download an export's files into the tracker's storage, as soon as the success webhook came.

Each file streams into a partial file on local disk; an interrupted download resumes from the
bytes already there (HTTP Range), and the whole file is checked against the announced sha256
before it is committed to storage (local directory or S3) under `downloads/<job_id>/<n>.ndjson`.
Committed files are deleted after the tracker's own retention (`purge_downloads`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.client import DownloadCorrupt, PlatformRejected, PlatformUnavailable
from ehiconnect.tracker.export_steps import retry_or_fail, schedule
from ehiconnect.tracker.ledger import JobState, Step
from ehiconnect.tracker.models import TrackerJob
from ehiconnect.tracker.runtime import TrackerRuntime

COPY_CHUNK = 1024 * 1024


async def download(tracker: TrackerRuntime, job_id: str) -> None:
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        if job.state not in (JobState.EXPORT_READY, JobState.DOWNLOADING):
            return
        store.move(job, JobState.DOWNLOADING, tracker.clock.now())
        store.count_attempt(job, Step.DOWNLOAD)
        links = list(job.download_links)
    try:
        files = [await _download_one(tracker, job_id, n, link) for n, link in enumerate(links)]
    except (PlatformUnavailable, DownloadCorrupt) as exc:
        async with tracker.database.transaction() as session:
            job = await store.lock_job(session, job_id)
            await retry_or_fail(session, tracker, job, Step.DOWNLOAD, exc)
        return
    except PlatformRejected as exc:
        async with tracker.database.transaction() as session:
            job = await store.lock_job(session, job_id)
            await _rejected(session, tracker, job, exc)
        return
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        now = tracker.clock.now()
        if not store.move(job, JobState.DOWNLOADED, now):
            return
        job.files = files
        job.files_expire_at = now + dt.timedelta(hours=tracker.settings.retention_hours)
        store.reset_attempts(job, Step.DOWNLOAD)
        detail = {"files": len(files), "bytes": sum(int(f["size"]) for f in files)}
        await store.log_event(session, job_id, now, Step.DOWNLOAD, "done", detail)
        await schedule(session, tracker, Step.INGEST.value, job_id=job_id)


async def _rejected(
    session: AsyncSession, tracker: TrackerRuntime, job: TrackerJob, exc: PlatformRejected
) -> None:
    """A file the platform no longer has (links expired) is exported again, within the budget."""
    now = tracker.clock.now()
    gone = exc.status in (404, 410)
    if gone and job.export_requests < tracker.settings.retry.max_export_requests:
        store.move(job, JobState.CONSENTED, now)
        job.task_id = None
        job.download_links = []
        await store.log_event(session, job.job_id, now, Step.DOWNLOAD, "files_gone")
        await schedule(session, tracker, Step.EXPORT.value, job_id=job.job_id)
        return
    store.fail(job, Step.DOWNLOAD, exc.code, exc.description, now)
    await schedule(session, tracker, "notify", job_id=job.job_id)


async def _download_one(
    tracker: TrackerRuntime, job_id: str, number: int, link: dict[str, Any]
) -> dict[str, Any]:
    key = f"downloads/{job_id}/{number}.ndjson"
    sha256 = link.get("sha256") if isinstance(link.get("sha256"), str) else None
    size = link.get("size") if isinstance(link.get("size"), int) else None
    stored = await tracker.blobs.stat(key)
    if stored is not None and sha256 and (size is None or stored.size == size):
        # Committed only after its sha256 matched: a retry after a crash past this point.
        return {"key": key, "size": stored.size, "sha256": sha256}
    partial = tracker.partial_dir / job_id / f"{number}.part"
    async with tracker.platform() as platform:
        result = await platform.download(
            str(link["url"]),
            partial,
            expected_sha256=sha256,
            expected_size=size,
            chunk_bytes=tracker.settings.download_chunk_bytes,
        )
    async with tracker.blobs.open_writer(key) as writer:
        async for block in _read_blocks(partial):
            await writer.write(block)
    if writer.stored.sha256 != result.sha256:
        raise DownloadCorrupt(f"storage holds different bytes for {key}; downloading again")
    partial.unlink(missing_ok=True)
    return {"key": key, "size": result.size, "sha256": result.sha256}


async def _read_blocks(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while block := await asyncio.to_thread(handle.read, COPY_CHUNK):
            yield block
    finally:
        handle.close()


async def purge_downloads(tracker: TrackerRuntime) -> int:
    """Delete downloaded files past the tracker's retention; the number of jobs purged."""
    now = tracker.clock.now()
    async with tracker.database.transaction() as session:
        jobs = list(
            await session.scalars(
                select(TrackerJob)
                .where(TrackerJob.files_expire_at <= now)
                .with_for_update(skip_locked=True)
            )
        )
        for job in jobs:
            for file in job.files:
                await tracker.blobs.delete(str(file["key"]))
            job.files_expire_at = None
            await store.log_event(session, job.job_id, now, Step.DOWNLOAD, "files_purged")
    return len(jobs)
