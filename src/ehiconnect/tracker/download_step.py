"""Download an export's files into the tracker's storage, as soon as the success webhook came.

Each file streams into a partial file and is hashed as it arrives; an interrupted download
resumes from the bytes already there (HTTP Range), and the whole file must match the announced
sha256 and size before it is committed to storage under `downloads/<job_id>/<n>.ndjson`:

- local storage: the partial file is the store's own staging file beside the key
  (`BlobStore.staging_path`), and committing it is a rename, so a multi-GB export is written
  once;
- S3, which cannot append (so cannot resume): the partial file is on local disk
  (`<data_dir>/tracker-partial/<job_id>/<n>.part`), committing it is an upload, then it is
  removed.

A job that fails at this step, or whose files are gone from the platform, has its partial and
committed files removed. Committed files, and the files lifted out of them for ingesting, are
deleted after the tracker's own retention (`purge_downloads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.storage.port import StorageError
from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.client import DownloadCorrupt, PlatformRejected, PlatformUnavailable
from ehiconnect.tracker.export_steps import retry_or_fail, schedule
from ehiconnect.tracker.ledger import JobState, Step
from ehiconnect.tracker.models import TrackerJob
from ehiconnect.tracker.runtime import TrackerRuntime

log = logging.getLogger(__name__)


async def download(tracker: TrackerRuntime, job_id: str) -> None:
    async with tracker.database.transaction() as session:
        job = await store.start_step(
            session,
            job_id,
            Step.DOWNLOAD,
            ready=JobState.EXPORT_READY,
            running=JobState.DOWNLOADING,
            now=tracker.clock.now(),
        )
        if job is None:
            return
        links = list(job.download_links)
    try:
        files = [await _download_one(tracker, job_id, n, link) for n, link in enumerate(links)]
    except (PlatformUnavailable, DownloadCorrupt, StorageError) as exc:
        async with tracker.database.transaction() as session:
            job = await store.lock_job(session, job_id)
            await retry_or_fail(session, tracker, job, Step.DOWNLOAD, exc)
            given_up = job.state == JobState.FAILED
        if given_up:
            await _discard_downloads(tracker, job_id, len(links))
        return  # else the partial files stay: the next attempt resumes them
    except PlatformRejected as exc:
        async with tracker.database.transaction() as session:
            job = await store.lock_job(session, job_id)
            await _rejected(session, tracker, job, exc)
        await _discard_downloads(tracker, job_id, len(links))
        return
    # The partials were committed; this removes any left where the other storage kind keeps them.
    await _discard_partials(tracker, job_id, len(links))
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


def _key(job_id: str, number: int) -> str:
    return f"downloads/{job_id}/{number}.ndjson"


def _partial_paths(tracker: TrackerRuntime, job_id: str, number: int) -> list[Path]:
    """Where the download of file `number` is built: the store's staging file when it has one
    (committed by a rename), else a local file (committed by an upload). Both, for cleaning."""
    staging = tracker.blobs.staging_path(_key(job_id, number))
    local = tracker.partial_dir / job_id / f"{number}.part"
    return [staging, local] if staging is not None else [local]


async def _download_one(
    tracker: TrackerRuntime, job_id: str, number: int, link: dict[str, Any]
) -> dict[str, Any]:
    key = _key(job_id, number)
    sha256 = link.get("sha256") if isinstance(link.get("sha256"), str) else None
    size = link.get("size") if isinstance(link.get("size"), int) else None
    stored = await tracker.blobs.stat(key)
    if stored is not None and sha256 and (size is None or stored.size == size):
        # Committed only after its sha256 matched: a retry after a crash past this point.
        return {"key": key, "size": stored.size, "sha256": sha256}
    partial = _partial_paths(tracker, job_id, number)[0]
    async with tracker.platform() as platform:
        result = await platform.download(
            str(link["url"]),
            partial,
            expected_sha256=sha256,
            expected_size=size,
            chunk_bytes=tracker.settings.download_chunk_bytes,
        )
    try:
        committed = await tracker.blobs.commit_file(key, partial, sha256=result.sha256)
    except FileNotFoundError as exc:
        raise DownloadCorrupt(
            f"the partial file of {key} went away before it was stored (the job running twice "
            "at once?); it is downloaded again"
        ) from exc
    return {"key": key, "size": committed.size, "sha256": committed.sha256}


async def _discard_partials(tracker: TrackerRuntime, job_id: str, count: int) -> None:
    """Remove a job's partial files: PHI that no retention would ever reach."""
    for number in range(count):
        for partial in _partial_paths(tracker, job_id, number):
            await asyncio.to_thread(partial.unlink, missing_ok=True)
    await asyncio.to_thread(_remove_if_empty, tracker.partial_dir / job_id)


async def _discard_downloads(tracker: TrackerRuntime, job_id: str, count: int) -> None:
    """Remove what downloads left for a job that will not ingest them: partial files, and
    files already committed (from an export now replaced)."""
    await _discard_partials(tracker, job_id, count)
    for number in range(count):
        try:
            await tracker.blobs.delete(_key(job_id, number))
        except StorageError as exc:
            log.warning("downloaded file not deleted", extra={"job_id": job_id, "error": str(exc)})


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()


def _stored_keys(file: dict[str, Any]) -> list[str]:
    """Every object of one downloaded file: the file, and what the ingest step lifted out of it
    (`ingest_key`, `payload_keys`), once each."""
    keys = [file.get("key"), file.get("ingest_key"), *(file.get("payload_keys") or [])]
    return list(dict.fromkeys(key for key in keys if isinstance(key, str)))


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
                for key in _stored_keys(file):
                    await tracker.blobs.delete(key)
            job.files_expire_at = None
            await store.log_event(session, job.job_id, now, Step.DOWNLOAD, "files_purged")
    return len(jobs)
