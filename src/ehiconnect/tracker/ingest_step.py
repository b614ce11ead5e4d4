"""Ingest downloaded files into every enabled sink, in batches, resumable.

Each sink says how it wants its batches cut (`Batching`: sizes, and whether referenced resources
must come first, see `ingest_batches`). For each (job, sink, file) a checkpoint in
`tracker_ingest_progress` counts the resources already written, in that sink's order, and names
the cut. A restarted ingest skips that many and goes on; the batch that was being written when
the worker died is written again, which the sinks absorb (they are idempotent), so nothing is lost
and nothing doubled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import select

from ehiconnect.db.database import pipelined_without_flush_wait
from ehiconnect.storage.port import BlobStore
from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.binary_lift import LiftError
from ehiconnect.tracker.export_steps import retry_or_fail, schedule
from ehiconnect.tracker.ingest_batches import Resources, batches
from ehiconnect.tracker.ledger import JobState, Step
from ehiconnect.tracker.lift_step import LiftedFile, lift_file
from ehiconnect.tracker.models import TrackerIngestProgress, TrackerJob
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import FhirServerSinkSettings
from ehiconnect.tracker.sinks.base import (
    Batching,
    LineSink,
    PreparingSink,
    Sink,
    SinkError,
    Statement,
    TemporarySinkError,
    TransactionalSink,
)
from ehiconnect.tracker.sinks.fhir_auth import (
    AwsSigV4,
    ClientCredentials,
    CommandToken,
    StaticBearer,
)
from ehiconnect.tracker.sinks.fhir_server import FhirServerSink
from ehiconnect.tracker.sinks.fhir_store import FhirStoreSink
from ehiconnect.tracker.sinks.parquet import ParquetSink

log = logging.getLogger(__name__)

# A checkpoint's commit does not wait for its WAL flush (`NO_FLUSH_WAIT`; one fsync per batch
# was a tenth of a FHIR store ingest): a crash loses only the latest commits, in order, so a
# checkpoint lost that way sends its batch again, which the sinks absorb; the job's move to
# `ingested`, an ordinary commit, flushes them all. Written as SQL once (building the ORM upsert
# for every batch cost more than running it) and sent straight to the driver, pipelined with the
# transaction's BEGIN and that setting: one round trip for the three. A sink writing into the
# tracker's database runs it in its batch's transaction instead.
_SAVE_CHECKPOINT = (
    "INSERT INTO tracker_ingest_progress (job_id, sink, file_key, lines_done, finished, batching) "
    "VALUES (%(job_id)s, %(sink)s, %(file_key)s, %(lines_done)s, %(finished)s, %(batching)s) "
    "ON CONFLICT (job_id, sink, file_key) DO UPDATE SET lines_done = EXCLUDED.lines_done, "
    "finished = EXCLUDED.finished, batching = EXCLUDED.batching"
)


def enabled_sinks(tracker: TrackerRuntime) -> list[Sink]:
    settings = tracker.settings
    sinks: list[Sink] = []
    if settings.fhir_store_enabled:
        sinks.append(FhirStoreSink(tracker.database, tracker.clock))
    if settings.parquet_enabled:
        sinks.append(ParquetSink(tracker.parquet_dir))
    if settings.fhir_server.enabled:
        sinks.append(fhir_server_sink(settings.fhir_server, tracker.blobs))
    return sinks


def fhir_server_sink(
    settings: FhirServerSinkSettings, payloads: BlobStore | None = None
) -> FhirServerSink:
    if not settings.base_url:
        raise ValueError(
            "tracker.fhir_server.enabled is set but tracker.fhir_server.base_url is not"
        )
    return FhirServerSink(
        settings.base_url,
        bundle_type=settings.bundle_type,
        auth=fhir_server_auth(settings),
        timeout=settings.timeout_seconds,
        batching=Batching(settings.batch_size, settings.batch_max_bytes, references_first=True),
        payloads=payloads,
    )


def fhir_server_auth(settings: FhirServerSinkSettings) -> httpx.Auth | None:
    """The FHIR server's authentication, from the first method configured (see settings)."""
    if settings.token_url:
        if not settings.client_id or settings.client_secret is None:
            raise ValueError(
                "tracker.fhir_server.token_url is set: set client_id and client_secret too"
            )
        return ClientCredentials(
            settings.token_url,
            settings.client_id,
            settings.client_secret.get_secret_value(),
            settings.scope,
        )
    if settings.token_command:
        return CommandToken(settings.token_command, settings.token_command_ttl_seconds)
    if settings.aws_region:
        return AwsSigV4(settings.aws_region)
    if settings.bearer_token is not None:
        return StaticBearer(settings.bearer_token.get_secret_value())
    if settings.basic_user and settings.basic_password is not None:
        return httpx.BasicAuth(settings.basic_user, settings.basic_password.get_secret_value())
    return None


async def ingest(tracker: TrackerRuntime, job_id: str, sinks: list[Sink] | None = None) -> None:
    async with tracker.database.transaction() as session:
        job = await store.start_step(
            session,
            job_id,
            Step.INGEST,
            ready=JobState.DOWNLOADED,
            running=JobState.INGESTING,
            now=tracker.clock.now(),
        )
        if job is None:
            return
        files = list(job.files)
    try:
        keys = [
            await _ingest_key(tracker, job_id, number, file) for number, file in enumerate(files)
        ]
    except LiftError as exc:
        async with tracker.database.transaction() as session:
            job = await store.lock_job(session, job_id)
            store.fail(job, Step.INGEST, "file_damaged", str(exc), tracker.clock.now())
            await schedule(session, tracker, "notify", job_id=job_id)
        return
    chosen = sinks if sinks is not None else enabled_sinks(tracker)
    written = 0
    try:
        for sink in chosen:
            for number, key in enumerate(keys):
                written += await ingest_file(tracker, job_id, sink, number, key)
    except TemporarySinkError as exc:
        async with tracker.database.transaction() as session:
            await retry_or_fail(
                session, tracker, await store.lock_job(session, job_id), Step.INGEST, exc
            )
        return
    except SinkError as exc:
        async with tracker.database.transaction() as session:
            job = await store.lock_job(session, job_id)
            store.fail(job, Step.INGEST, "sink_rejected", str(exc)[:1000], tracker.clock.now())
            await schedule(session, tracker, "notify", job_id=job_id)
        return
    finally:
        for sink in chosen:
            await sink.close()
    parquet = [sink for sink in chosen if isinstance(sink, ParquetSink)]
    superseded = await _superseded_jobs(tracker, job_id) if parquet else []
    for sink in parquet:
        if superseded:
            await sink.forget_jobs(superseded)
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        now = tracker.clock.now()
        if store.move(job, JobState.INGESTED, now):
            store.reset_attempts(job, Step.INGEST)
            detail = {"sinks": [s.name for s in chosen], "resources_written": written}
            await store.log_event(session, job_id, now, Step.INGEST, "done", detail)
            await schedule(session, tracker, "notify", job_id=job_id)


async def _superseded_jobs(tracker: TrackerRuntime, job_id: str) -> list[str]:
    """Jobs whose export this one's supersedes for the same connection: earlier ingested ones,
    or this job itself when a later export of the connection is already in (it finished late)."""
    async with tracker.database.transaction() as session:
        job = await session.get(TrackerJob, job_id)
        if job is None:
            return []
        rows = await session.execute(
            select(TrackerJob.job_id, TrackerJob.created_at).where(
                TrackerJob.org_connection_id == job.org_connection_id,
                TrackerJob.job_id != job_id,
                TrackerJob.state == JobState.INGESTED,
            )
        )
        others = list(rows)
    if any(created > job.created_at for _, created in others):
        return [job_id, *(other for other, created in others if created <= job.created_at)]
    return [other for other, _ in others]


async def _ingest_key(
    tracker: TrackerRuntime, job_id: str, number: int, file: dict[str, Any]
) -> str:
    """The key the sinks read for a downloaded file: the file, or its lifted version (made once
    and remembered in the job's `files` entry: `ingest_key`, `payload_keys`)."""
    if "ingest_key" in file:
        return str(file["ingest_key"])
    key = str(file["key"])
    threshold = tracker.settings.inline_data_max_bytes
    lifted = LiftedFile(ingest_key=key)
    if int(file.get("size") or 0) > threshold:  # a smaller file cannot hold a longer line
        lifted = await lift_file(tracker.blobs, key, threshold)
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        entries = [dict(entry) for entry in job.files]
        entries[number] |= {"ingest_key": lifted.ingest_key, "payload_keys": lifted.payload_keys}
        job.files = entries
    return lifted.ingest_key


async def ingest_file(
    tracker: TrackerRuntime, job_id: str, sink: Sink, number: int, key: str
) -> int:
    """Write one file into one sink from its checkpoint on; the resources written now."""
    batching = sink.batching or Batching(
        tracker.settings.ingest_batch_size, tracker.settings.ingest_batch_bytes, lines=True
    )
    if batching.lines and not isinstance(sink, LineSink):  # it takes resources, parsed for it
        batching = dataclasses.replace(batching, lines=False)
    done, finished = await _checkpoint(tracker, job_id, sink.name, key, batching.signature)
    if finished:
        return 0
    prepare, write = _steps_of(sink)
    # A sink in the tracker's own database saves each checkpoint in its batch's transaction.
    together = sink if isinstance(sink, TransactionalSink) else None
    if together is not None and not together.writes_to(tracker.database):
        together = None
    written = 0
    unsaved = False  # the checkpoint of the batch before, to save before the next one is written
    async for before, count, prepared in batches(tracker.blobs, key, batching, done, prepare):
        if unsaved:
            await _save_checkpoint(tracker, job_id, sink.name, key, done, False, batching.signature)
        batch_key = f"{job_id}-{number}-{before:09d}"
        if together is not None:
            values: dict[str, Any] = {"job_id": job_id, "sink": sink.name, "file_key": key}
            values |= {"lines_done": before + count, "batching": batching.signature}
            also = Statement(_SAVE_CHECKPOINT, values | {"finished": False})
            await together.write_prepared(prepared, batch_key=batch_key, also=also)
        else:
            await write(prepared, batch_key=batch_key)
        # A sink parsing lines itself counts those that were not a resource (`malformed`).
        written += count - int(getattr(prepared, "malformed", 0))
        done = before + count
        # Saved once the next batch is in hand, or as the file's last (finished): a file of one
        # batch (Parquet's usual case) costs one save, not two. A crash before the save sends
        # this batch again, which the sinks absorb, as they absorb the batch in flight.
        unsaved = together is None
    await _save_checkpoint(tracker, job_id, sink.name, key, done, True, batching.signature)
    return written


def _steps_of(sink: Sink) -> tuple[Callable[[Any], Any], Callable[..., Awaitable[None]]]:
    """(prepare, write) of a batch: a preparing sink's CPU work runs ahead (`PreparingSink`, or
    `LineSink`, which parses the lines itself, the FHIR store's giving way as it goes so that the
    write before goes on meanwhile); another sink gets its batch as parsed."""
    if isinstance(sink, LineSink):
        return sink.prepare_lines, sink.write_prepared
    if isinstance(sink, PreparingSink):
        return sink.prepare, sink.write_prepared
    return _as_parsed, sink.write_batch


def _as_parsed(batch: Resources) -> Resources:
    return batch


async def _checkpoint(
    tracker: TrackerRuntime, job_id: str, sink: str, key: str, batching: str
) -> tuple[int, bool]:
    """(resources already written, finished); a count made with other batching starts over."""
    async with tracker.database.transaction() as session:
        row = await session.get(TrackerIngestProgress, (job_id, sink, key))
        if row is None:
            return 0, False
        if row.finished:
            return row.lines_done, True
        # Batches cut another way (the settings changed) cover other resources: write them all
        # again, which idempotent sinks absorb.
        return (row.lines_done if row.batching == batching else 0), False


async def _save_checkpoint(
    tracker: TrackerRuntime,
    job_id: str,
    sink: str,
    key: str,
    done: int,
    finished: bool,
    batching: str,
) -> None:
    values = {
        "job_id": job_id,
        "sink": sink,
        "file_key": key,
        "lines_done": done,
        "finished": finished,
        "batching": batching,
    }
    async with (
        tracker.database.transaction() as session,
        pipelined_without_flush_wait(session) as driver,
    ):
        await driver.execute(_SAVE_CHECKPOINT, values)
