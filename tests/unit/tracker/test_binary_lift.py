"""Lifting large inline payloads out of NDJSON: what comes out, whatever the chunking."""

from __future__ import annotations

import base64
import os
import random
from typing import Any

import orjson
import pytest

from ehiconnect.fhir.binary import binary_line_parts
from ehiconnect.tracker.binary_lift import (
    BinaryLifter,
    LiftData,
    LiftEnd,
    LiftError,
    LiftStart,
    Line,
    open_payload_at,
)

THRESHOLD = 256


def run(stream: bytes, chunk_sizes: list[int] | None = None) -> list[Any]:
    """Feed `stream` in the given chunk sizes (cycled); merge consecutive LiftData."""
    lifter = BinaryLifter(THRESHOLD)
    events = []
    position, turn = 0, 0
    sizes = chunk_sizes or [len(stream) or 1]
    while position < len(stream):
        size = sizes[turn % len(sizes)]
        events += lifter.feed(stream[position : position + size])
        position += size
        turn += 1
    events += lifter.finish()
    merged: list[Any] = []
    for event in events:
        if isinstance(event, LiftData) and merged and isinstance(merged[-1], LiftData):
            merged[-1] = LiftData(event.number, merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def small(number: int) -> bytes:
    return orjson.dumps({"resourceType": "Observation", "id": f"o{number}", "note": "x" * 20})


def platform_binary(payload: bytes) -> bytes:
    """A Binary line exactly as the platform's export writes it."""
    line = b"".join(binary_line_parts("att-1", "image/png", "https://ehr/Binary/1", [payload]))
    return line.rstrip(b"\n")


CHUNKINGS = [[1_000_000], [1], [7], [64], [255, 1, 3], [256], [257]]


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_small_lines_pass_through_and_a_large_binary_is_decoded(chunks: list[int]) -> None:
    payload = os.urandom(5000)
    stream = b"\n".join([small(1), platform_binary(payload), small(2), b"", small(3)]) + b"\n"

    events = run(stream, chunks)

    assert events == [
        Line(1, small(1)),
        LiftStart(2),
        LiftData(2, payload),
        LiftEnd(
            2,
            {
                "resourceType": "Binary",
                "id": "att-1",
                "contentType": "image/png",
                "meta": {"source": "https://ehr/Binary/1"},
            },
            5000,
        ),
        Line(3, small(2)),
        Line(4, b""),
        Line(5, small(3)),
    ]


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_payload_anywhere_among_the_members_with_escapes_and_line_breaks(
    chunks: list[int],
) -> None:
    payload = bytes(random.Random(3).randrange(256) for _ in range(3000))
    text = base64.b64encode(payload)
    # an encoder that escapes slashes and wraps lines every 76 symbols
    wrapped = b"\\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    line = b'{"resourceType":"Binary","data":"' + wrapped.replace(b"/", b"\\/")
    line += b'","id":"b2","contentType":"application/pdf"}'

    events = run(line, chunks)  # no final newline

    assert events == [
        LiftStart(1),
        LiftData(1, payload),
        LiftEnd(1, {"resourceType": "Binary", "id": "b2", "contentType": "application/pdf"}, 3000),
    ]


def test_an_overlong_line_without_a_top_level_payload_is_kept_whole() -> None:
    nested = orjson.dumps({"resourceType": "Basic", "id": "n", "extension": {"data": "QUJD" * 200}})
    numbers = orjson.dumps({"resourceType": "Basic", "id": "m", "data": [1] * 300})
    stream = nested + b"\n" + numbers + b"\n" + small(9) + b"\n"
    assert run(stream, [100]) == [Line(1, nested), Line(2, numbers), Line(3, small(9))]


def test_head_scan_finds_only_the_open_top_level_data_string() -> None:
    assert open_payload_at(b'{"resourceType":"Binary","id":"x","data":"QUJD') == 42
    assert open_payload_at(b'{"id":"x","data":"QUJD"}') is None  # closed: not large
    assert open_payload_at(b'{"meta":{"data":"QUJD') is None  # nested
    assert open_payload_at(b'{"note":"a \\"data\\":\\"","data":"QU') == 32
    assert open_payload_at(b'{"data":["QU') is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"resourceType":"Binary","data":"' + b"QUJD" * 100 + b'!!"}\n', "not valid base64"),
        (b'{"resourceType":"Binary","data":"' + b"QUJD" * 100 + b'Q"}\n', "mid-group"),
        (b'{"resourceType":"Binary","data":"' + b"QUJD" * 100 + b"\n{}\n", "line ends inside"),
        (b'{"resourceType":"Binary","data":"' + b"QUJD" * 100, "file ends inside"),
        (b'{"resourceType":"Binary","data":"' + b"QUJD" * 100 + b'"}}\n', "not valid JSON"),
        (b'{"resourceType":"Binary","data":"' + b"QUJD" * 100 + b'\\u0041"}\n', "JSON escape"),
    ],
)
def test_damaged_payloads_fail_naming_the_line_not_its_content(line: bytes, problem: str) -> None:
    stream = small(1) + b"\n" + line
    with pytest.raises(LiftError, match=problem) as failure:
        run(stream, [50])
    assert "line 2" in str(failure.value)
    assert "QUJD" not in str(failure.value)
