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
from dataclasses import dataclass, field
from typing import Any

import orjson

from ehiconnect.storage.port import BlobStore, BlobWriter
from ehiconnect.tracker.binary_lift import (
    BinaryLifter,
    Event,
    LiftData,
    LiftStart,
    Line,
)

STORED_DATA_URL = "https://ehiconnect.dev/fhir/StructureDefinition/stored-data"
_FLUSH_BYTES = 1024 * 1024


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
    """Lift the large payloads of stored file `key`; the file itself when there are none."""
    base = key.removesuffix(".ndjson")
    lifted = LiftedFile(ingest_key=f"{base}.ingest.ndjson")
    lifter = BinaryLifter(threshold)
    buffer = bytearray()
    async with contextlib.AsyncExitStack() as outer:
        out = await outer.enter_async_context(blobs.open_writer(lifted.ingest_key))
        payload: contextlib.AsyncExitStack | None = None
        writer: BlobWriter | None = None
        payload_key = ""

        async def handle(event: Event) -> None:
            nonlocal payload, writer, payload_key
            if isinstance(event, Line):
                buffer.extend(event.data)
                buffer.extend(b"\n")
                if len(buffer) >= _FLUSH_BYTES:
                    await out.write(bytes(buffer))
                    buffer.clear()
            elif isinstance(event, LiftStart):
                payload_key = f"{base}.binary/{event.number}.bin"
                payload = contextlib.AsyncExitStack()
                writer = await payload.enter_async_context(blobs.open_writer(payload_key))
            elif isinstance(event, LiftData):
                assert writer is not None
                await writer.write(event.data)
            else:
                assert payload is not None
                assert writer is not None
                await payload.aclose()  # commits the payload object
                stored = writer.stored
                lifted.payload_keys.append(payload_key)
                line = _with_pointer(event.resource, payload_key, stored.size, stored.sha256)
                buffer.extend(orjson.dumps(line))
                buffer.extend(b"\n")
                payload, writer = None, None

        try:
            # Each chunk is decoded in a worker thread while the events of the one before are
            # written (the store hashes and writes in a thread of its own): one `feed` at a
            # time, so the lifter sees the chunks in order.
            previous: list[Event] = []
            async for chunk in blobs.open_reader(key):
                decoding = asyncio.ensure_future(asyncio.to_thread(lifter.feed, chunk))
                try:
                    for event in previous:
                        await handle(event)
                finally:
                    previous = await decoding
            for event in [*previous, *lifter.finish()]:
                await handle(event)
            if buffer:
                await out.write(bytes(buffer))
        except BaseException as exc:
            if payload is not None:  # discard the partial payload object, do not commit it
                await payload.__aexit__(type(exc), exc, exc.__traceback__)
            raise
    if not lifted.payload_keys:
        await blobs.delete(lifted.ingest_key)
        return LiftedFile(ingest_key=key)
    return lifted
