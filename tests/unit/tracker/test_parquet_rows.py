"""The Parquet sink reads NDJSON lines itself: its columns equal `sinks.fields` on the parsed
resource whatever shape the fields have, malformed lines are skipped and counted, and the
`resource` column is the line as exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from ehiconnect.storage.memory import MemoryBlobStore
from ehiconnect.tracker.ingest_batches import batches
from ehiconnect.tracker.sinks.base import Batching, LineSink
from ehiconnect.tracker.sinks.fields import codes_of, date_of, patient_of
from ehiconnect.tracker.sinks.parquet import ParquetSink
from ehiconnect.tracker.sinks.parquet_rows import rows_of

LOINC = "http://loinc.org"

# Each a shape the typed reading takes, or one it leaves to the general path (orjson + fields).
SHAPES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p1", "subject": {"reference": "Patient/other"}},
    {
        "resourceType": "Observation",
        "id": "plain",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": LOINC, "code": "1-1"}, {"code": "bare"}]},
        "effectiveDateTime": "2025-01-01",
        "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
    },
    {
        "resourceType": "Encounter",
        "id": "list-type",
        "subject": {"reference": "https://x/Patient/p2/_history/3"},
        "type": [
            {"coding": [{"system": "s", "code": "b"}, {"system": "s", "code": "a"}]},
            {"text": "no coding"},
        ],
        "period": {"start": "2024-05-05", "end": "2024-05-06"},
    },
    {
        "resourceType": "Claim",
        "id": "beneficiary",
        "patient": {"display": "no reference"},
        "beneficiary": {"reference": "Patient/p3"},
        "created": "2024-01-01",
        "date": "2023-01-01",
    },
    {
        "resourceType": "AuditEvent",
        "id": "coding-as-type",
        "type": {"system": "s", "code": "rest"},
        "recorded": "2024",
    },
    {
        "resourceType": "Immunization",
        "id": "vaccine",
        "patient": {"reference": "Patient/p1"},
        "vaccineCode": {"coding": [{"system": 7, "code": "208"}, {"code": 5}, {"system": None}]},
        "occurrenceDateTime": 20240101,
        "issued": "2024-02-02",
    },
    {
        "resourceType": "MedicationRequest",
        "id": "med",
        "subject": {"reference": "Group/g"},
        "individual": {"reference": "Patient/p4"},
        "medicationCodeableConcept": {"coding": None},
        "authoredOn": "2024-03-03",
        "effectivePeriod": {"start": "2020"},
    },
    {
        "resourceType": "Procedure",
        "id": "period-start",
        "performedPeriod": {"start": 5},
        "onsetPeriod": {"start": "2001"},
        "performedDateTime": None,
    },
    # shapes the typed reading does not take: the general path must agree with it
    {"resourceType": "Observation", "id": "code-string", "code": "abc", "subject": "Patient/p1"},
    {"resourceType": "Observation", "id": "coding-dict", "code": {"coding": {"code": "x"}}},
    {
        "resourceType": "Observation",
        "id": "coding-items",
        "code": {"coding": ["x", None, {"code": "y"}]},
    },
    {
        "resourceType": "Observation",
        "id": "concept-items",
        "type": [None, "t", {"coding": [{"code": "z"}]}],
    },
    {
        "resourceType": "Observation",
        "id": "subject-list",
        "subject": [{"reference": "Patient/p1"}],
        "patient": {"reference": "Patient/p9"},
    },
    {
        "resourceType": "Observation",
        "id": "period-string",
        "period": "2024",
        "onsetPeriod": {"start": "1999"},
    },
    {"resourceType": "Observation", "id": "meta-list", "meta": ["x"]},
    {"resourceType": "Observation", "id": "stamp-number", "meta": {"lastUpdated": 5}},
    {
        "resourceType": "Condition",
        "id": "unicode",
        "note": [{"text": "caf\u00e9 \u2014 \U0001f600 \u0000"}],
        "code": {"coding": [{"system": "s\u00e9", "code": "\u00e9"}]},
    },
    {
        "resourceType": "Observation",
        "id": "deep",
        "extension": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]],
    },
]
LEFT_OUT: list[Any] = [
    {"resourceType": "Observation", "code": {"text": "no id"}},
    {"resourceType": 3, "id": "x"},
    {"id": "no type"},
    {"resourceType": "Observation", "id": 12},
]


def expected(resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource.get("meta")
    stamp = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return {
        "resource_type": resource["resourceType"],
        "id": resource["id"],
        "patient_id": patient_of(resource),
        "codes": codes_of(resource),
        "date": date_of(resource),
        "last_updated": stamp if isinstance(stamp, str) else None,
        "resource": orjson.dumps(resource).decode(),
    }


def test_columns_equal_the_fields_of_the_parsed_resource_whatever_their_shape() -> None:
    rows = rows_of([orjson.dumps(r) for r in [*SHAPES[:8], *LEFT_OUT, *SHAPES[8:]]])

    assert rows.malformed == 0
    assert rows.table.to_pylist() == [expected(r) for r in SHAPES]  # file order, left-outs out


def test_malformed_lines_are_skipped_and_counted() -> None:
    good = orjson.dumps(SHAPES[1])
    lines = [
        b'{"resourceType": "Observation", "id": "cut',
        b"[1, 2]",
        b'{"resourceType":"Observation","id":"bad-utf8","note":"\xff\xfe"}',  # text it skips
        b'{"resourceType":"Observation","id":"\xff"}',
        b'{"resourceType":"Observation","id":"nan","value":NaN}',
        b"[" * 5000 + b"]" * 5000,
        b'{"resourceType":"Observation","id":"deep","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        good,
    ]
    rows = rows_of(lines)

    assert rows.malformed == 7
    assert rows.table.column("id").to_pylist() == ["plain"]


def test_the_resource_column_is_the_line_as_exported() -> None:
    line = b' {"resourceType" : "Observation", "id":"o1", "note":"caf\\u00e9 \\u0000"}\t\r'
    rows = rows_of([line])

    stored = rows.table.column("resource").to_pylist()
    assert stored == [line.strip().decode()]
    assert orjson.loads(stored[0])["note"] == "caf\u00e9 \u0000"


@pytest.mark.parametrize("chunk_size", [1, 50, 200, 10**6])
async def test_ingest_hands_the_sink_its_lines_and_counts_positions_in_lines(
    chunk_size: int,
) -> None:
    # lines split across chunks, or several whole in one, or the whole file in one
    blobs = MemoryBlobStore(chunk_size=chunk_size)
    lines = [orjson.dumps({"resourceType": "Observation", "id": f"o{n}"}) for n in range(12)]
    data = b"\n".join([*lines[:4], b"", b"  ", b"{not json", *lines[4:]])  # no final newline
    async with blobs.open_writer("f.ndjson") as writer:
        await writer.write(data)
    batching = Batching(5, 10**6, lines=True)
    assert batching.signature != Batching(5, 10**6).signature  # a checkpoint counts lines

    def ids(batch: list[bytes]) -> list[str]:
        return [orjson.loads(line)["id"] if line.startswith(b'{"') else "?" for line in batch]

    cut = [item async for item in batches(blobs, "f.ndjson", batching, skip=2, prepare=ids)]

    assert cut == [
        (2, 5, ["o2", "o3", "?", "o4", "o5"]),  # the malformed line holds its position
        (7, 5, [f"o{n}" for n in range(6, 11)]),
        (12, 1, ["o11"]),
    ]


@pytest.mark.parametrize("chunk_size", [7, 10**6])
async def test_lines_are_cut_by_their_bytes_and_a_longer_line_goes_alone(chunk_size: int) -> None:
    blobs = MemoryBlobStore(chunk_size=chunk_size)
    sizes = [20, 20, 20, 120, 20, 20, 30]  # bytes of each line, newline not counted
    lines = [b"x" * size for size in sizes]
    async with blobs.open_writer("f.ndjson") as writer:
        await writer.write(b"\n".join(lines) + b"\n")

    def lengths(batch: list[bytes]) -> list[int]:
        return [len(line) for line in batch]

    batching = Batching(100, 50, lines=True)
    cut = [item async for item in batches(blobs, "f.ndjson", batching, skip=0, prepare=lengths)]

    assert cut == [(0, 2, [20, 20]), (2, 1, [20]), (3, 1, [120]), (4, 2, [20, 20]), (6, 1, [30])]


def test_lines_are_cut_in_file_order_only() -> None:
    with pytest.raises(ValueError, match="file order"):
        Batching(5, 10**6, references_first=True, lines=True)


async def test_the_sink_takes_lines_and_duckdb_reads_them(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    assert isinstance(sink, LineSink)
    lines = [orjson.dumps(r) for r in SHAPES]
    await sink.write_prepared(sink.prepare_lines([*lines, b"{oops"]), batch_key="job1-0-000000000")
    await sink.write_batch(SHAPES, batch_key="job1-0-000000000")  # the same, replaced

    table = pq.read_table(tmp_path / "Observation" / "job1-0-000000000.parquet")
    assert table.to_pylist() == [expected(r) for r in SHAPES if r["resourceType"] == "Observation"]
    glob = str(tmp_path / "*" / "*.parquet")
    notes = (
        duckdb.connect()
        .execute(
            "select json_extract_string(resource, '$.note[0].text') from read_parquet(?) "
            "where id = 'unicode'",
            [glob],
        )
        .fetchall()
    )
    assert notes == [("caf\u00e9 \u2014 \U0001f600 \u0000",)]
