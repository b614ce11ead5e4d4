"""The NDJSON writer deduplicates, counts and hashes what it writes; the reader streams lines."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from ehiconnect.fhir.ndjson import (
    AsyncNdjsonWriter,
    InvalidResource,
    NdjsonDecodeError,
    NdjsonReader,
    NdjsonWriter,
    WriterBroken,
    iter_ndjson,
)
from ehiconnect.storage.memory import MemoryBlobStore


def _obs(i: int, **extra: object) -> dict[str, object]:
    return {"resourceType": "Observation", "id": f"o{i}", "status": "final", **extra}


class RecordingSink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return len(data)


def test_writer_dedupes_counts_and_hashes_exactly_what_reaches_the_sink() -> None:
    sink = io.BytesIO()
    writer = NdjsonWriter(sink)
    assert writer.write({"resourceType": "Patient", "id": "p1"})
    assert writer.write(_obs(1))
    assert not writer.write(_obs(1, status="amended")), "same type/id must be written once"
    assert writer.write({"resourceType": "Condition", "id": "o1"}), "same id, other type is new"
    stats = writer.flush()

    data = sink.getvalue()
    lines = [orjson.loads(line) for line in data.splitlines()]
    assert [(r["resourceType"], r["id"]) for r in lines] == [
        ("Patient", "p1"),
        ("Observation", "o1"),
        ("Condition", "o1"),
    ]
    assert lines[1]["status"] == "final", "the first copy wins"
    assert stats.total_resources == 3
    assert stats.by_resource_type == {"Condition": 1, "Observation": 1, "Patient": 1}
    assert stats.duplicates_skipped == 1
    assert stats.size == len(data)
    assert stats.sha256 == hashlib.sha256(data).hexdigest()
    assert ("Observation", "o1") in writer
    assert ("Observation", "o2") not in writer


def test_writer_hands_the_sink_large_chunks_not_one_write_per_resource() -> None:
    sink = RecordingSink()
    writer = NdjsonWriter(sink, chunk_size=4096)
    for i in range(2000):
        writer.write(_obs(i))
    writer.flush()
    assert len(sink.writes) < 2000 / 20
    assert all(len(chunk) >= 4096 for chunk in sink.writes[:-1])


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({"id": "x"}, "no resourceType"),
        ({"resourceType": "Observation"}, "Observation resource has no id"),
        (["not", "a", "resource"], "expected a JSON object"),
        ({"resourceType": "Observation", "id": "o", "valueInteger": 2**70}, "cannot be encoded"),
    ],
)
def test_writer_refuses_what_cannot_be_deduplicated(resource: object, message: str) -> None:
    writer = NdjsonWriter(io.BytesIO())
    with pytest.raises(InvalidResource, match=message):
        writer.write(resource)  # type: ignore[arg-type]


def test_line_parts_of_a_duplicate_are_never_consumed() -> None:
    consumed: list[int] = []

    def download() -> Iterator[bytes]:
        consumed.append(1)
        yield b'{"resourceType":"Binary","id":"b1"}\n'

    sink = io.BytesIO()
    writer = NdjsonWriter(sink, chunk_size=8)
    assert writer.write_line_parts("Binary", "b1", download())
    assert not writer.write_line_parts("Binary", "b1", download())
    stats = writer.flush()
    assert consumed == [1]
    assert stats.by_resource_type == {"Binary": 1}
    assert stats.sha256 == hashlib.sha256(sink.getvalue()).hexdigest()


async def test_async_writer_streams_to_a_blob_store_with_matching_stats() -> None:
    store = MemoryBlobStore()

    async def parts() -> AsyncIterator[bytes]:
        yield b'{"resourceType":"Binary","id":"b1","data":"'
        yield b"QUJD"
        yield b'"}\n'

    async with store.open_writer("exports/a.jsonl") as blob:
        writer = AsyncNdjsonWriter(blob, chunk_size=64)
        for i in range(50):
            await writer.write(_obs(i % 40))
        assert await writer.write_line_parts("Binary", "b1", parts())
        stats = await writer.flush()

    assert stats.total_resources == 41
    assert stats.duplicates_skipped == 10
    assert stats.size == blob.stored.size
    assert stats.sha256 == blob.stored.sha256
    lines = store.objects["exports/a.jsonl"].splitlines()
    assert orjson.loads(lines[-1]) == {"resourceType": "Binary", "id": "b1", "data": "QUJD"}


def _chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 10_000])
def test_reader_yields_each_line_whatever_the_chunk_boundaries(chunk_size: int) -> None:
    data = (
        b"".join(orjson.dumps(_obs(i)) + b"\n" for i in range(20)) + b"\n" + orjson.dumps(_obs(99))
    )  # a blank line, and no newline at the end
    resources = list(iter_ndjson(_chunked(data, chunk_size)))
    assert [r["id"] for r in resources] == [f"o{i}" for i in range(20)] + ["o99"]


def test_reader_reads_a_binary_file_line_by_line(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "x.ndjson"
    path.write_bytes(
        b'{"resourceType":"Patient","id":"p"}\r\n{"resourceType":"Patient","id":"q"}\n'
    )
    with path.open("rb") as file:
        assert [r["id"] for r in iter_ndjson(file)] == ["p", "q"]


def test_malformed_line_raises_with_its_line_number_and_not_its_content() -> None:
    data = b'{"resourceType":"Patient","id":"p"}\n\n{"name": "Jane Doe SECRET"\n{"a":1}\n'
    with pytest.raises(NdjsonDecodeError) as caught:
        list(iter_ndjson([data]))
    assert caught.value.line_number == 3
    assert "line 3" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_malformed_lines_are_recorded_and_skipped_when_asked() -> None:
    data = b'{"id":"1"}\nnot json\n[1,2]\n{"id":"2"}\n'
    reader = NdjsonReader(skip_malformed=True)
    assert [r["id"] for r in reader.iter([data])] == ["1", "2"]
    assert [(m.line_number, m.reason.split()[0]) for m in reader.malformed] == [
        (2, "invalid"),
        (3, "a"),
    ]
    assert reader.malformed_count == 2


async def test_async_reader_parses_chunks_from_a_blob_store() -> None:
    store = MemoryBlobStore(chunk_size=5)
    async with store.open_writer("k") as blob:
        await blob.write(b"".join(orjson.dumps(_obs(i)) + b"\n" for i in range(10)))
    reader = NdjsonReader()
    ids = [r["id"] async for r in reader.aiter(store.open_reader("k"))]
    assert ids == [f"o{i}" for i in range(10)]
    assert reader.line_number == 10


def test_a_stream_failing_midway_breaks_the_writer_instead_of_corrupting_silently() -> None:
    class DownloadFailed(Exception):
        pass

    def download() -> Iterator[bytes]:
        yield b'{"resourceType":"Binary","id":"b1","data":"QUJD'
        raise DownloadFailed

    writer = NdjsonWriter(io.BytesIO())
    writer.write(_obs(1))
    with pytest.raises(DownloadFailed):
        writer.write_line_parts("Binary", "b1", download())
    with pytest.raises(WriterBroken, match="partial Binary line"):
        writer.write(_obs(2))
    with pytest.raises(WriterBroken):
        writer.flush()


async def test_async_writer_can_leave_hashing_to_its_sink() -> None:
    from ehiconnect.fhir.ndjson import AsyncNdjsonWriter

    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()

        async def write(self, data: bytes, /) -> None:
            self.data += data

    sink = Sink()
    writer = AsyncNdjsonWriter(sink, digest=False)
    assert await writer.write({"resourceType": "Patient", "id": "1"})
    stats = await writer.flush()
    assert stats.sha256 == ""
    assert stats.size == len(sink.data) > 0
    assert stats.total_resources == 1
