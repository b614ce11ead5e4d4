"""Ingest's batch cutting, the Parquet sink's files and the FHIR store's prepared rows, without a
database."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from ehiconnect.storage.memory import MemoryBlobStore
from ehiconnect.tracker.ingest_batches import batches
from ehiconnect.tracker.sinks.base import Batching, LineSink, PreparingSink
from ehiconnect.tracker.sinks.fhir_store import FhirStoreSink
from ehiconnect.tracker.sinks.fields import codes_of, content_sha256, date_of, patient_of
from ehiconnect.tracker.sinks.parquet import SCHEMA, ParquetSink


def observation(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{number}",
        "meta": {"lastUpdated": f"2026-01-{number % 28 + 1:02d}"},
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": f"{number}-1"}]},
        "effectiveDateTime": f"2025-{number % 12 + 1:02d}-01",
        **extra,
    }


def record() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": "p1", "name": [{"family": "Ng"}]},
        observation(1),
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}},
        observation(2, note=[{"text": "caf\u00e9 \u2014 \U0001f600"}]),
        {"resourceType": "Observation", "code": {"text": "no id"}},  # skipped: no id
        {"resourceType": "../escape", "id": "x"},  # skipped: not a safe folder name
        observation(3, meta="not an object"),
    ]


def expected_rows(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The columns as the sink wrote them a row at a time before it built them column-wise."""
    rows = []
    for resource in resources:
        if resource.get("resourceType") != kind or not isinstance(resource.get("id"), str):
            continue
        meta = resource.get("meta")
        rows.append(
            {
                "resource_type": kind,
                "id": resource["id"],
                "patient_id": patient_of(resource),
                "codes": codes_of(resource),
                "date": date_of(resource),
                "last_updated": meta.get("lastUpdated") if isinstance(meta, dict) else None,
                "resource": orjson.dumps(resource).decode(),
            }
        )
    return rows


async def test_parquet_writes_one_file_per_type_with_the_fixed_columns(tmp_path: Path) -> None:
    resources = record()
    sink = ParquetSink(tmp_path)
    await sink.write_batch(resources, batch_key="job1-0-000000000")
    await sink.write_batch(resources, batch_key="job1-0-000000000")  # a re-run replaces it

    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert files == [
        "Condition",
        "Condition/job1-0-000000000.parquet",
        "Observation",
        "Observation/job1-0-000000000.parquet",
        "Patient",
        "Patient/job1-0-000000000.parquet",
    ]
    for kind in ("Patient", "Observation", "Condition"):
        table = pq.read_table(tmp_path / kind / "job1-0-000000000.parquet")
        assert table.schema.equals(SCHEMA)
        assert table.to_pylist() == expected_rows(resources, kind)  # file order within a type


async def test_batches_keep_file_order_and_leave_the_collector_as_found() -> None:
    blobs = MemoryBlobStore(chunk_size=100)  # lines split across chunks
    lines = [orjson.dumps(observation(n)) for n in range(25)]
    async with blobs.open_writer("f.ndjson") as writer:
        await writer.write(b"\n".join([*lines[:10], b"", b"{not json", *lines[10:]]) + b"\n")
    assert gc.isenabled()

    def ids(batch: list[dict[str, Any]]) -> list[str]:
        return [r["id"] for r in batch]

    cut = [
        item async for item in batches(blobs, "f.ndjson", Batching(10, 10**6), skip=5, prepare=ids)
    ]

    assert cut == [
        (5, 10, [f"o{n}" for n in range(5, 15)]),
        (15, 10, [f"o{n}" for n in range(15, 25)]),
    ]
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_the_fhir_store_prepares_each_resource_once_by_type_and_id() -> None:
    sink = FhirStoreSink(database=None, clock=None)  # type: ignore[arg-type]  # prepare is pure
    assert isinstance(sink, PreparingSink)
    amended = observation(1, status="amended")
    nul = {"resourceType": "Patient", "id": "p\u00002", "name": [{"text": "a\u0000b"}]}

    prepared = sink.prepare([*record(), amended, nul]).rows

    assert list(prepared) == [
        ("Patient", "p1"),
        ("Observation", "o1"),
        ("Condition", "c1"),
        ("Observation", "o2"),
        ("../escape", "x"),
        ("Observation", "o3"),
        ("Patient", "p\ufffd2"),
    ]
    row = prepared[("Observation", "o1")]  # the batch's last copy
    assert row.sha == content_sha256(amended)
    # The row as binary COPY sends it, less the version and time the write puts in.
    assert copy_fields(row.head, row.tail) == [
        "Observation",
        "o1",
        content_sha256(amended),
        "p1",
        codes_of(amended),
        date_of(amended),
        amended,
    ]
    assert copy_fields(*prepared[("Condition", "c1")][1:])[3:6] == ["p1", [], None]
    stored = copy_fields(*prepared[("Patient", "p\ufffd2")][1:])
    assert stored[0:2] == ["Patient", "p\ufffd2"]
    assert stored[2] == content_sha256(nul)  # of the resource as exported
    assert stored[3] == "p\ufffd2"  # its patient: itself
    assert stored[6] == {
        "resourceType": "Patient",
        "id": "p\ufffd2",
        "name": [{"text": "a\ufffdb"}],
    }


def test_the_fhir_store_prepares_rows_whose_values_repeat_other_fields() -> None:
    """A batch's repeated values are encoded once: a value met as a type, then as a patient
    id or code, is still encoded as what it is each time."""
    sink = FhirStoreSink(database=None, clock=None)  # type: ignore[arg-type]  # prepare is pure
    odd = [
        {"resourceType": "Observation", "id": "o1", "code": {"coding": [{"code": "Patient"}]}},
        {"resourceType": "Patient", "id": "Observation"},
        {"resourceType": "Basic", "id": "b1", "subject": {"reference": "Patient/Patient"}},
    ]
    prepared = sink.prepare(odd).rows
    fields = [copy_fields(*row[1:]) for row in prepared.values()]
    assert [f[:2] + f[3:5] for f in fields] == [
        ["Observation", "o1", None, ["Patient", "|Patient"]],
        ["Patient", "Observation", "Observation", []],
        ["Basic", "b1", "Patient", []],
    ]


def copy_fields(head: bytes, tail: bytes) -> list[Any]:
    """PostgreSQL's binary COPY fields of a prepared row: type, id, digest, patient, codes (a
    text array), date, body (jsonb)."""
    assert head[:2] == (9).to_bytes(2, "big")  # fields in the row

    def fields(data: bytes) -> list[bytes | None]:
        found: list[bytes | None] = []
        while data:
            size = int.from_bytes(data[:4], "big", signed=True)
            found.append(None if size < 0 else data[4 : 4 + size])
            data = data[4 + max(size, 0) :]
        return found

    kind, rid = fields(head[2:])
    sha, patient, codes, date, body = fields(tail)
    assert codes is not None
    assert body is not None
    assert body[0] == 1  # jsonb's format version
    dimensions = int.from_bytes(codes[:4], "big")
    elements = fields(codes[20:]) if dimensions else []
    text = [kind, rid, sha, patient, *elements, date]
    decoded = [value.decode() if value is not None else None for value in text]
    return [*decoded[:4], decoded[4:-1], decoded[-1], orjson.loads(body[1:])]


async def test_the_fhir_store_prepares_lines_stepwise_as_it_prepares_resources() -> None:
    """The FHIR store parses its batches' lines itself, giving the event loop turns as it goes
    (the write before goes on meanwhile), with the rows `prepare` makes of the parsed lines, a
    resource repeated in a later slice included (its last copy wins); a line that is not a JSON
    object is skipped and counted."""
    sink = FhirStoreSink(database=None, clock=None)  # type: ignore[arg-type]  # prepare is pure
    assert isinstance(sink, LineSink)
    resources = [observation(n % 150, status=f"s{n}") for n in range(200)]
    lines = [orjson.dumps(resource) for resource in resources]
    lines[10:10] = [b"{oops", b"[1, 2]", b'"nothing"']
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    stepwise = await sink.prepare_lines(lines)
    other.cancel()

    assert stepwise.rows == sink.prepare(resources).rows
    assert stepwise.malformed == 3
    assert len(stepwise.rows) == 150
    assert stepwise.rows[("Observation", "o0")].sha == content_sha256(resources[150])
    assert turns >= 3  # a turn after each slice, not one after the whole batch
