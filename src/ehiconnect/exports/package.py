"""Assemble the staging area into the export's NDJSON file (and its error report).

The file is built in one local file (`BlobStore.staging_path`: for local storage committing it is
a rename; for S3 it is uploaded once at the end) by a pipeline that keeps the event loop free and
memory flat: the download is read ahead in its own thread (`crawler/bulk_body.py`; a staged blob
chunk by chunk), the chunk in hand is base64-encoded on the event loop (`pybase64`'s SIMD encoder
takes about 0.1 ms a MiB, less than handing the chunk to a thread and back), and the encoded
chunks are hashed in one thread (sha256 releases the GIL) while another writes them, so the work
spreads over the cores and the file goes at the pace of its slowest step, the hash; the stages
hold a few MiB (`IN_FLIGHT` chunks), whatever the export's size. The file goes straight to the
disk from a buffer of our own where the file system allows it (`appender.py`: `O_DIRECT`, a
quarter of the page cache's CPU), else through the page cache 64 MiB at a time
(`writeback.py`), rather than all at the final fsync.

The Patient comes first, then the organizations, locations, clinicians and medications others
refer to, then every other type in (type, id) order, then one `Binary` line per attachment in id
order. Attachments the crawl staged are read from their blobs; the larger ones it left to
packaging are downloaded here, once, straight into their line, so their bytes are downloaded,
encoded, hashed and written once. A download that fails is cut back out of the file (and its
hash) and lands in the error report.

Packaging is resumable: every `CHECKPOINT_BYTES` it records the file's length, the sha256 of what
is before it and the next attachment (step `package`). A worker that resumes checks the partial
file against that digest, cuts it back to the recorded length and goes on; if the file is missing
or does not match, it starts the file again. Either way the output is the same bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ehiconnect.crawler.ports import FetchError, FhirSource
from ehiconnect.exports.ports import StagedAttachment, StagedExport
from ehiconnect.fhir.binary import Base64Encoder, binary_line_prefix
from ehiconnect.storage.appender import Appender, open_appender
from ehiconnect.storage.port import BlobStore

LEADING_TYPES = (
    "Patient",
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Medication",
)
CHECKPOINT_BYTES = 256 << 20
CHUNK_SIZE = 1 << 20
IN_FLIGHT = 6  # chunks handed to the hash and write threads at once (12 MiB of base64 held)
_LINE_SUFFIX = b'"}\n'

Progress = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class PackagedFile:
    key: str
    file_id: str
    size: int
    sha256: str
    total_resources: int
    by_resource_type: dict[str, int]


@dataclass
class _Checkpoint:
    file_id: str
    offset: int = 0
    sha256: str = ""
    next_attachment: str | None = None  # None: the resources are not all written yet
    binaries: int = 0

    def dumps(self) -> str:
        return orjson.dumps(self.__dict__).decode()


class _FileAssembler:
    """Appends to the local file in worker threads, hashing as it writes: each chunk is hashed in
    one thread while it is written in another (sha256 is the slowest step and both release the
    GIL). Each of the two has a thread of its own, which takes its chunks in order, so file and
    hash keep the file's order with up to `IN_FLIGHT` chunks handed over at once: the hash
    thread finds the next chunk queued instead of waiting for the event loop to hand it over.
    `mark`/`rollback` cut a failed line back out of file and hash."""

    def __init__(self, appender: Appender, offset: int, digest: Any) -> None:
        self._appender = appender
        self.offset = offset
        self._hash = digest
        self._buffer = bytearray()
        self._in_flight: collections.deque[tuple[asyncio.Future[None], asyncio.Future[None]]] = (
            collections.deque()
        )
        self._hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-hash")
        self._writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-write")

    async def write(self, data: bytes) -> None:
        if len(data) >= CHUNK_SIZE:
            await self._drain()
            await self._submit(data)
            return
        self._buffer += data
        if len(self._buffer) >= CHUNK_SIZE:
            await self._drain()

    async def _drain(self) -> None:
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            await self._submit(data)

    async def _submit(self, data: bytes) -> None:
        while len(self._in_flight) >= IN_FLIGHT:
            await self._settle_oldest()
        self.offset += len(data)
        loop = asyncio.get_running_loop()
        self._in_flight.append(
            (
                loop.run_in_executor(self._hashing, self._hash.update, data),
                loop.run_in_executor(self._writing, self._appender.append, data),
            )
        )

    async def _settle_oldest(self) -> None:
        for outcome in await asyncio.gather(*self._in_flight.popleft(), return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def settle(self) -> None:
        """Wait for every chunk in flight; the first error, if any, is raised here (after all
        their threads' work is done, so none still uses the file or the hash)."""
        error: BaseException | None = None
        while self._in_flight:
            try:
                await self._settle_oldest()
            except Exception as exc:  # the rest still settle before it is raised
                error = error or exc
        if error is not None:
            raise error

    def close(self) -> None:
        """End the two threads (after `settle`: nothing is left in flight)."""
        self._hashing.shutdown(wait=True)
        self._writing.shutdown(wait=True)

    async def flush(self) -> None:
        await self._drain()
        await self.settle()
        await self._in_writing_thread(self._appender.sync)

    async def mark(self) -> tuple[int, Any]:
        await self._drain()
        await self.settle()
        return self.offset, self._hash.copy()

    async def rollback(self, mark: tuple[int, Any]) -> None:
        self._buffer.clear()
        with contextlib.suppress(Exception):
            await self.settle()
        self.offset, self._hash = mark[0], mark[1].copy()
        await self._in_writing_thread(self._appender.cut, self.offset)

    async def _in_writing_thread(self, call: Callable[..., None], *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writing, call, *args)

    def hexdigest(self) -> str:
        return str(self._hash.hexdigest())


@dataclass
class _Run:
    staged: StagedExport
    out: _FileAssembler
    checkpoint: _Checkpoint
    counts: dict[str, int] = field(default_factory=dict)
    since_checkpoint: int = 0

    async def save(self) -> None:
        await self.out.flush()
        self.checkpoint.offset = self.out.offset
        self.checkpoint.sha256 = self.out.hexdigest()
        await self.staged.save_checkpoint(self.checkpoint.dumps())
        self.since_checkpoint = 0


async def package_export(
    staged: StagedExport,
    blobs: BlobStore,
    task_id: str,
    *,
    new_file_id: Callable[[], str],
    source: FhirSource | None = None,
    on_progress: Progress | None = None,
) -> PackagedFile:
    """Build and commit the export file of `staged` (task `task_id`); its name comes from
    `new_file_id` unless a killed run already chose one. The attachments the crawl left to
    packaging are downloaded from `source` (without one they are left out)."""
    saved = await staged.checkpoint()
    checkpoint = _Checkpoint(**orjson.loads(saved)) if saved else None
    if checkpoint is None:
        checkpoint = _Checkpoint(file_id=new_file_id())
    key = export_file_key(task_id, checkpoint.file_id)
    path = blobs.staging_path(key) or _local_work_path(task_id)
    digest = await asyncio.to_thread(_open_partial, path, checkpoint)
    appender = await asyncio.to_thread(open_appender, path, checkpoint.offset)
    run = _Run(staged, _FileAssembler(appender, checkpoint.offset, digest), checkpoint)
    try:
        if checkpoint.next_attachment is None:
            await _write_resources(run)
            await run.save()
        run.counts = await staged.resource_counts()
        await _write_attachments(run, blobs, source, on_progress)
        await run.out.flush()
        await asyncio.to_thread(appender.close)
        sha256 = run.out.hexdigest()
        stored = await blobs.commit_file(key, path, sha256=sha256)
    finally:
        try:
            with contextlib.suppress(Exception):  # what failed was raised already
                await run.out.settle()
        finally:
            run.out.close()
            with contextlib.suppress(OSError):
                appender.close()
    counts = dict(run.counts)
    if checkpoint.binaries:
        counts["Binary"] = counts.get("Binary", 0) + checkpoint.binaries
    return PackagedFile(
        key=key,
        file_id=checkpoint.file_id,
        size=stored.size,
        sha256=stored.sha256,
        total_resources=sum(counts.values()),
        by_resource_type=dict(sorted(counts.items())),
    )


def export_folder(task_id: str) -> str:
    """The blob-store folder of a task's files: the export file and the error report."""
    return f"exports/{task_id}"


def export_file_key(task_id: str, file_id: str) -> str:
    return f"{export_folder(task_id)}/{file_id}"


def error_report_key(task_id: str) -> str:
    return f"{export_folder(task_id)}/errors.ndjson"


def _local_work_path(task_id: str) -> Path:
    """Where to build the file for a store without a local staging path (S3)."""
    directory = Path(tempfile.gettempdir()) / "ehiconnect-packaging"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / f"{task_id}.partial"


def _open_partial(path: Path, checkpoint: _Checkpoint) -> Any:
    """The hash of what the partial file keeps, the file cut back to the checkpoint; a new empty
    file (and a checkpoint from the start) when there is none or it does not match."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if checkpoint.offset:
        with contextlib.suppress(FileNotFoundError), path.open("r+b") as file:
            digest = hashlib.sha256()
            left = checkpoint.offset
            while left and (block := file.read(min(CHUNK_SIZE * 8, left))):
                digest.update(block)
                left -= len(block)
            if left == 0 and digest.hexdigest() == checkpoint.sha256:
                file.truncate(checkpoint.offset)
                return digest
    # Start over (a new run, or a partial file lost with its worker's disk).
    checkpoint.offset, checkpoint.sha256 = 0, ""
    checkpoint.next_attachment, checkpoint.binaries = None, 0
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600))  # PHI: owner only
    return hashlib.sha256()


async def _write_resources(run: _Run) -> None:
    # Staged bodies are already compact JSON: written as they are, not parsed again. The patient
    # and what many resources point at come first, so a consumer that loads the file in order
    # (e.g. into a FHIR server, in batches) meets referenced resources early.
    for first in LEADING_TYPES:
        async for _, body in run.staged.resources(types=frozenset({first})):
            await run.out.write(body + b"\n")
    async for resource_type, body in run.staged.resources():
        if resource_type not in LEADING_TYPES:
            await run.out.write(body + b"\n")
    run.checkpoint.next_attachment = ""  # every resource written: attachments from the first


async def _write_attachments(
    run: _Run, blobs: BlobStore, source: FhirSource | None, on_progress: Progress | None
) -> None:
    attachments = await run.staged.attachments(from_binary_id=run.checkpoint.next_attachment or "")
    staged_binaries = await run.staged.binary_resource_ids()
    for attachment in attachments:
        if run.since_checkpoint >= CHECKPOINT_BYTES:
            run.checkpoint.next_attachment = attachment.binary_id
            await run.save()
        # A Binary the server returned as a resource is already in the file.
        if attachment.binary_id in staged_binaries:
            continue
        written: int | None
        if attachment.done and attachment.blob_key:
            chunks: AsyncIterator[bytes] = blobs.open_reader(attachment.blob_key)
            written = await _write_binary(run, attachment, chunks)
        elif not attachment.done and source is not None:
            written = await _download_binary(run, source, attachment)
            if written and on_progress is not None:
                await on_progress(attachment_bytes=written)
        else:
            continue
        if written is not None:
            run.checkpoint.binaries += 1
            run.since_checkpoint += written


async def _write_binary(
    run: _Run, attachment: StagedAttachment, chunks: AsyncIterator[bytes]
) -> int:
    """One Binary line from chunks; how many raw bytes it held."""
    encoder = Base64Encoder()
    size = 0
    await run.out.write(
        binary_line_prefix(attachment.binary_id, attachment.content_type, attachment.source_url)
    )
    async for chunk in chunks:
        size += len(chunk)
        await run.out.write(encoder.feed(chunk))
    await run.out.write(encoder.finish() + _LINE_SUFFIX)
    return size


class _LineSink:
    """A download streamed into its Binary line; a restart cuts the partial line back out."""

    def __init__(self, run: _Run, attachment: StagedAttachment, start: tuple[int, Any]) -> None:
        self._run = run
        self._attachment = attachment
        self._start = start
        self._encoder = Base64Encoder()
        self.size = 0

    async def begin(self, content_type: str, declared_size: int | None) -> None:
        attachment = self._attachment
        await self._run.out.write(
            binary_line_prefix(
                attachment.binary_id,
                attachment.content_type or content_type or None,
                attachment.source_url,
            )
        )

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        await self._run.out.write(self._encoder.feed(chunk))

    async def restart(self) -> None:
        await self._run.out.rollback(self._start)
        self._encoder = Base64Encoder()
        self.size = 0

    async def finish(self) -> None:
        await self._run.out.write(self._encoder.finish() + _LINE_SUFFIX)


async def _download_binary(
    run: _Run, source: FhirSource, attachment: StagedAttachment
) -> int | None:
    start = await run.out.mark()
    sink = _LineSink(run, attachment, start)
    result = await source.download(attachment.source_url, sink)
    if isinstance(result, FetchError):
        await sink.restart()
        await _record_failure(run, attachment.binary_id, result)
        return None
    await sink.finish()
    return sink.size


async def _record_failure(run: _Run, binary_id: str, failure: FetchError) -> None:
    await run.staged.record_error(failure.outcome("Binary"))


async def package_errors(staged: StagedExport, blobs: BlobStore, key: str) -> tuple[int, int]:
    """The error report as NDJSON of OperationOutcomes; (count, size), (0, 0) when clean."""
    outcomes = await staged.errors()
    if not outcomes:
        return 0, 0
    async with blobs.open_writer(key) as sink:
        for outcome in outcomes:
            await sink.write(orjson.dumps(outcome) + b"\n")
    return len(outcomes), sink.stored.size


async def discard_partial(staged: StagedExport, blobs: BlobStore, task_id: str) -> None:
    """Remove a partial export file a packaging run left (it holds PHI); idempotent."""
    saved = await staged.checkpoint()
    if not saved:
        return
    file_id = orjson.loads(saved)["file_id"]
    path = blobs.staging_path(export_file_key(task_id, file_id)) or _local_work_path(task_id)
    await asyncio.to_thread(path.unlink, missing_ok=True)
