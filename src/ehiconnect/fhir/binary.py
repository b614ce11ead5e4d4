"""Inline FHIR `Binary` resources built from attachment bytes, streamed.

An attachment can be hundreds of MB, so its NDJSON line is produced as a sequence of parts:

    {"resourceType":"Binary","id":"att-…","contentType":"…","meta":{"source":"<url>"},"data":"
    <base64 of chunk 1><base64 of chunk 2>…
    "}\n

Base64 is encoded incrementally (carrying at most 2 bytes between chunks), so each input chunk is
held once plus its encoding. The encoder is `pybase64` (SIMD; about twice CPython's speed here, and
it releases the GIL, so an encoding can run in a worker thread beside the event loop). Feed the
parts to `NdjsonWriter.write_line_parts`, which skips the download entirely when that Binary was
already written.

Ids of hydrated attachments are deterministic (`binary_id_for_attachment`): a same-server
`Binary/{id}` keeps its id, anything else gets one derived from the source URL, so a resumed or
repeated export writes the same id and deduplication holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

import orjson
import pybase64

from ehiconnect.fhir.ndjson import AsyncNdjsonWriter, NdjsonWriter
from ehiconnect.fhir.references import ReferenceKind, classify_reference

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def attachment_binary_id(source_url: str) -> str:
    """Deterministic FHIR id for the Binary hydrated from `source_url` (36 chars, [a-z0-9-])."""
    digest = hashlib.blake2b(source_url.encode(), digest_size=16).hexdigest()
    return f"att-{digest}"


def binary_id_for_attachment(url: str, base_url: str) -> str:
    """The id the hydrated Binary gets: the server's own id for a same-server `Binary/{id}`
    (so `Attachment.url` still resolves inside the export), else `attachment_binary_id(url)`."""
    reference = classify_reference(url, base_url)
    if (
        reference.kind in (ReferenceKind.RELATIVE, ReferenceKind.SAME_SERVER)
        and reference.resource_type == "Binary"
        and reference.resource_id is not None
        and reference.version is None
    ):
        return reference.resource_id
    return attachment_binary_id(url)


class Base64Encoder:
    """Incremental base64: `feed` returns the encoding of all complete 3-byte groups so far."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        data = self._carry + chunk if self._carry else chunk
        cut = len(data) - len(data) % 3
        self._carry = bytes(data[cut:])
        if not cut:
            return b""
        # A memoryview slice: the 1 MiB chunk is not copied before it is encoded.
        return pybase64.b64encode(memoryview(data)[:cut] if cut < len(data) else data)

    def finish(self) -> bytes:
        tail, self._carry = self._carry, b""
        return pybase64.b64encode(tail) if tail else b""


def binary_line_prefix(binary_id: str, content_type: str | None, source_url: str | None) -> bytes:
    """The line up to and including the opening quote of `data`."""
    head: dict[str, Any] = {
        "resourceType": "Binary",
        "id": binary_id,
        "contentType": content_type or DEFAULT_CONTENT_TYPE,
    }
    if source_url:
        head["meta"] = {"source": source_url}
    return orjson.dumps(head)[:-1] + b',"data":"'


_LINE_SUFFIX = b'"}\n'


def binary_line_parts(
    binary_id: str,
    content_type: str | None,
    source_url: str | None,
    chunks: Iterable[bytes],
) -> Iterator[bytes]:
    """The parts of one Binary NDJSON line, encoding `chunks` as they arrive."""
    encoder = Base64Encoder()
    yield binary_line_prefix(binary_id, content_type, source_url)
    for chunk in chunks:
        encoded = encoder.feed(chunk)
        if encoded:
            yield encoded
    yield encoder.finish() + _LINE_SUFFIX


async def abinary_line_parts(
    binary_id: str,
    content_type: str | None,
    source_url: str | None,
    chunks: AsyncIterable[bytes],
) -> AsyncIterator[bytes]:
    """`binary_line_parts` over an asynchronous chunk source (a streaming HTTP download)."""
    encoder = Base64Encoder()
    yield binary_line_prefix(binary_id, content_type, source_url)
    async for chunk in chunks:
        encoded = encoder.feed(chunk)
        if encoded:
            yield encoded
    yield encoder.finish() + _LINE_SUFFIX


def write_binary(
    writer: NdjsonWriter,
    binary_id: str,
    content_type: str | None,
    source_url: str | None,
    chunks: Iterable[bytes],
) -> bool:
    """Stream one Binary line into an NDJSON writer; False (chunks untouched) if already written."""
    parts = binary_line_parts(binary_id, content_type, source_url, chunks)
    return writer.write_line_parts("Binary", binary_id, parts)


async def awrite_binary(
    writer: AsyncNdjsonWriter,
    binary_id: str,
    content_type: str | None,
    source_url: str | None,
    chunks: AsyncIterable[bytes],
) -> bool:
    """`write_binary` for an asynchronous writer and chunk source."""
    parts = abinary_line_parts(binary_id, content_type, source_url, chunks)
    return await writer.write_line_parts("Binary", binary_id, parts)


def binary_resource(
    binary_id: str, content_type: str | None, data: bytes, source_url: str | None = None
) -> dict[str, Any]:
    """A whole Binary resource, for small payloads (inline `Attachment.data` already in hand)."""
    resource: dict[str, Any] = {
        "resourceType": "Binary",
        "id": binary_id,
        "contentType": content_type or DEFAULT_CONTENT_TYPE,
    }
    if source_url:
        resource["meta"] = {"source": source_url}
    resource["data"] = pybase64.b64encode(data).decode("ascii")
    return resource
