"""Before ingesting: lift large inline `Binary` payloads out of a downloaded file (streaming).

A file with a line longer than `inline_data_max_bytes` is read once (`binary_lift`): ordinary
lines are copied as they are into `<file>.ingest.ndjson`, and each large Binary's payload is
decoded into its own object `<file>.binary/<line>.bin` while the line keeps the rest of the
resource plus a pointer in `meta.extension` (`STORED_DATA_URL`: storage key, size, sha256).
The sinks then ingest the lighter file: the FHIR store and Parquet keep the pointer, the FHIR
server sink uploads the payload as a raw `PUT Binary/<id>`. The downloaded file itself stays as
it was (its sha256 is the one the platform announced).

Memory stays at `inline_data_max_bytes` plus a chunk, whatever the attachment's size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ehiconnect.storage.port import BlobStore, BlobWriter
from ehiconnect.tracker.binary_lift import (
    BinaryLifter,
    Event,
    LiftData,
    LiftEnd,
    LiftStart,
    Line,
)
from ehiconnect.tracker.payload_writer import PayloadWriter, Stages, open_payload, run_in

STORED_DATA_URL = "https://ehiconnect.dev/fhir/StructureDefinition/stored-data"
_FLUSH_BYTES = 1024 * 1024
_GROUP_BYTES = 4 * 1024 * 1024  # file bytes decoded per thread hop (the store reads 1 MiB chunks)


@dataclass
class LiftedFile:
    ingest_key: str  # the file the sinks read
    payload_keys: list[str] = field(default_factory=list)


def stored_data(resource: dict[str, Any]) -> tuple[str, int, str] | None:
    """(storage key, size, sha256) of a lifted payload, from the resource's pointer; else None."""
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return None
    for extension in meta.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == STORED_DATA_URL:
            parts = {
                part.get("url"): part.get("valueString") or part.get("valueDecimal")
                for part in extension.get("extension") or []
                if isinstance(part, dict)
            }
            key, size, sha256 = parts.get("key"), parts.get("size"), parts.get("sha256")
            if isinstance(key, str) and isinstance(size, (int, float)) and isinstance(sha256, str):
                return key, int(size), sha256
    return None


def _with_pointer(resource: dict[str, Any], key: str, size: int, sha256: str) -> dict[str, Any]:
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    pointer = {
        "url": STORED_DATA_URL,
        "extension": [
            {"url": "key", "valueString": key},
            {"url": "size", "valueDecimal": size},
            {"url": "sha256", "valueString": sha256},
        ],
    }
    meta["extension"] = [*(meta.get("extension") or []), pointer]
    return {**resource, "meta": meta}


async def lift_file(blobs: BlobStore, key: str, threshold: int) -> LiftedFile:
    """Lift the large payloads of stored file `key`; the file itself when there are none.

    Three stages overlap on the machine's cores: a group of chunks is decoded in a worker
    thread while the payload decoded from the group before is hashed and written (two more
    threads, `payload_writer`) and the next group is read ahead by the store.
    """
    base = key.removesuffix(".ndjson")
    lifted = LiftedFile(ingest_key=f"{base}.ingest.ndjson")
    lifter = BinaryLifter(threshold)
    stages = Stages()
    try:
        await _lift(blobs, key, lifter, stages, lifted)
    finally:
        stages.close()
    if not lifted.payload_keys:
        await blobs.delete(lifted.ingest_key)
        return LiftedFile(ingest_key=key)
    return lifted


async def _lift(
    blobs: BlobStore, key: str, lifter: BinaryLifter, stages: Stages, lifted: LiftedFile
) -> None:
    base = key.removesuffix(".ndjson")
    async with blobs.open_writer(lifted.ingest_key) as out:
        copier = _Copier(blobs, base, out, lifted, stages)
        try:
            previous: list[Event] = []
            async with contextlib.aclosing(_groups(blobs.open_reader(key))) as groups:
                reading = asyncio.ensure_future(_next_group(groups))
                try:
                    while group := await reading:
                        # The next group is read while this one is decoded and the one before
                        # is written: each stage on its own thread.
                        reading = asyncio.ensure_future(_next_group(groups))
                        decoding = run_in(stages.decode, _feed_all, lifter, group)
                        try:
                            await copier.handle(previous)
                        finally:
                            previous = await decoding
                finally:
                    if not reading.done():
                        reading.cancel()
                    with contextlib.suppress(BaseException):
                        await reading
            await copier.handle([*previous, *lifter.finish()])
            await copier.flush()
        except BaseException as exc:
            await copier.discard(exc)  # a partial payload is never committed
            raise


class _Copier:
    """Takes the lifter's events in order: lines into the ingest file, payloads into objects."""

    def __init__(
        self, blobs: BlobStore, base: str, out: BlobWriter, lifted: LiftedFile, stages: Stages
    ) -> None:
        self._blobs = blobs
        self._stages = stages
        self._base = base
        self._out = out
        self._lifted = lifted
        self._buffer = bytearray()
        self._payload: PayloadWriter | None = None
        self._payload_key = ""

    async def handle(self, events: list[Event]) -> None:
        pieces: list[bytes] = []  # consecutive payload bytes, handed over as one block
        for event in events:
            if isinstance(event, LiftData):
                pieces.append(event.data)
                continue
            if pieces:
                await self._write_payload(pieces)
                pieces = []
            if isinstance(event, Line):
                self._buffer += event.data
                self._buffer += b"\n"
                if len(self._buffer) >= _FLUSH_BYTES:
                    await self.flush()
            elif isinstance(event, LiftStart):
                self._payload_key = f"{self._base}.binary/{event.number}.bin"
                self._payload = await open_payload(self._blobs, self._payload_key, self._stages)
            else:
                await self._end_payload(event)
        if pieces:
            await self._write_payload(pieces)

    async def flush(self) -> None:
        if self._buffer:
            await self._out.write(bytes(self._buffer))
            self._buffer.clear()

    async def discard(self, error: BaseException) -> None:
        payload, self._payload = self._payload, None
        if payload is not None:
            await payload.discard(error)

    async def _write_payload(self, pieces: list[bytes]) -> None:
        assert self._payload is not None
        await self._payload.write(pieces)

    async def _end_payload(self, event: LiftEnd) -> None:
        assert self._payload is not None
        stored = await self._payload.commit()
        self._payload = None
        self._lifted.payload_keys.append(self._payload_key)
        line = _with_pointer(event.resource, self._payload_key, stored.size, stored.sha256)
        self._buffer += orjson.dumps(line)
        self._buffer += b"\n"


async def _groups(chunks: AsyncIterator[bytes]) -> AsyncGenerator[list[bytes], None]:
    """The store's chunks in groups of about `_GROUP_BYTES`: one thread hop decodes a group."""
    group: list[bytes] = []
    held = 0
    async for chunk in chunks:
        group.append(chunk)
        held += len(chunk)
        if held >= _GROUP_BYTES:
            yield group
            group, held = [], 0
    if group:
        yield group


async def _next_group(groups: AsyncGenerator[list[bytes], None]) -> list[bytes]:
    """The next group, or an empty list at the end of the file."""
    return await anext(groups, [])


def _feed_all(lifter: BinaryLifter, group: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in group:
        events += lifter.feed(chunk)
    return events
