"""Streamed Binary lines decode to the original bytes; outcomes carry no resource content."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from ehiconnect.fhir.binary import (
    Base64Encoder,
    abinary_line_parts,
    attachment_binary_id,
    awrite_binary,
    binary_id_for_attachment,
    binary_line_parts,
    binary_resource,
    write_binary,
)
from ehiconnect.fhir.ndjson import AsyncNdjsonWriter, NdjsonWriter, iter_ndjson
from ehiconnect.fhir.outcome import (
    MAX_DIAGNOSTICS,
    issue_code_for_status,
    mask_secret_params,
    operation_outcome,
    outcome_for_http_failure,
    outcome_line,
)
from ehiconnect.storage.memory import MemoryBlobStore

PAYLOAD = os.urandom(100_003)
URL = "https://ehr.example.org/fhir/Binary/abc"


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 1000, 65_536, 200_000])
def test_incremental_base64_equals_one_shot_base64(chunk_size: int) -> None:
    encoder = Base64Encoder()
    encoded = b"".join(encoder.feed(c) for c in _chunks(PAYLOAD, chunk_size)) + encoder.finish()
    assert encoded == base64.b64encode(PAYLOAD)


def test_binary_line_written_through_the_ndjson_writer_round_trips() -> None:
    sink = io.BytesIO()
    writer = NdjsonWriter(sink, chunk_size=4096)
    binary_id = attachment_binary_id(URL)
    assert write_binary(writer, binary_id, "application/pdf", URL, _chunks(PAYLOAD, 8192))
    assert not write_binary(writer, binary_id, "application/pdf", URL, iter([b"other"]))
    writer.write({"resourceType": "Patient", "id": "p"})
    stats = writer.flush()

    binary, patient = list(iter_ndjson([sink.getvalue()]))
    assert binary == {
        "resourceType": "Binary",
        "id": binary_id,
        "contentType": "application/pdf",
        "meta": {"source": URL},
        "data": base64.b64encode(PAYLOAD).decode(),
    }
    assert patient["id"] == "p"
    assert stats.by_resource_type == {"Binary": 1, "Patient": 1}


async def test_async_binary_line_streams_into_storage() -> None:
    async def download() -> AsyncIterator[bytes]:
        for chunk in _chunks(PAYLOAD, 10_000):
            yield chunk

    store = MemoryBlobStore()
    async with store.open_writer("x.jsonl") as blob:
        writer = AsyncNdjsonWriter(blob)
        assert await awrite_binary(writer, "b1", None, None, download())
        await writer.write_line_parts(
            "Binary", "b2", abinary_line_parts("b2", "text/plain", None, download())
        )
        stats = await writer.flush()
    assert stats.by_resource_type == {"Binary": 2}
    line = orjson.loads(store.objects["x.jsonl"].splitlines()[0])
    assert line["contentType"] == "application/octet-stream"
    assert "meta" not in line
    assert base64.b64decode(line["data"]) == PAYLOAD


def test_binary_resource_for_small_payloads_matches_the_streamed_form() -> None:
    streamed = b"".join(binary_line_parts("b", "text/plain", URL, [b"hello"]))
    assert orjson.loads(streamed) == binary_resource("b", "text/plain", b"hello", URL)


def test_attachment_ids_are_stable_valid_fhir_ids_distinct_per_url() -> None:
    first = attachment_binary_id(URL)
    assert first == attachment_binary_id(URL)
    assert first != attachment_binary_id(URL + "x")
    assert len(first) <= 64
    assert all(c.isalnum() or c == "-" for c in first)


def test_outcome_names_what_and_where_and_masks_tokens() -> None:
    outcome = outcome_for_http_failure(
        url="https://ehr/fhir/Observation?patient=1&access_token=SECRET&category=laboratory",
        status=503,
        resource_type="Observation",
        detail="gave up after 5 attempts",
    )
    (issue,) = outcome["issue"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert issue["severity"] == "error"
    assert issue["code"] == "transient"
    assert issue["diagnostics"] == "Request failed with HTTP 503: gave up after 5 attempts"
    assert issue["expression"] == ["Observation"]
    assert "SECRET" not in issue["details"]["text"]
    assert "category=laboratory" in issue["details"]["text"]
    assert outcome_line(outcome).endswith(b"\n")


def test_same_failure_gives_same_id_different_failure_another() -> None:
    one = operation_outcome(diagnostics="boom", url="Observation?patient=1")
    assert one["id"] == operation_outcome(diagnostics="boom", url="Observation?patient=1")["id"]
    assert one["id"] != operation_outcome(diagnostics="boom", url="Condition?patient=1")["id"]


def test_outcome_refuses_unknown_codes_and_bounds_diagnostics() -> None:
    with pytest.raises(ValueError, match="not an IssueType"):
        operation_outcome(diagnostics="x", code="oops")
    long = operation_outcome(diagnostics="x" * 5000)
    assert len(long["issue"][0]["diagnostics"]) <= 1001


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (None, "transient"),
        (401, "forbidden"),
        (404, "not-found"),
        (429, "throttled"),
        (504, "timeout"),
        (500, "exception"),
        (503, "transient"),
        (400, "invalid"),
    ],
)
def test_issue_code_for_status(status: int | None, code: str) -> None:
    assert issue_code_for_status(status) == code


def test_mask_leaves_urls_without_secrets_alone() -> None:
    assert mask_secret_params("Patient/1") == "Patient/1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("Binary/abc", "abc"),
        ("https://ehr.example.org/fhir/Binary/abc", "abc"),
        ("Binary/abc/_history/2", attachment_binary_id("Binary/abc/_history/2")),
        (
            "https://cdn.example.net/Binary/abc",
            attachment_binary_id("https://cdn.example.net/Binary/abc"),
        ),
        ("DocumentReference/d1", attachment_binary_id("DocumentReference/d1")),
    ],
)
def test_same_server_binaries_keep_their_id_so_attachment_urls_still_resolve(
    url: str, expected: str
) -> None:
    assert binary_id_for_attachment(url, "https://ehr.example.org/fhir") == expected


def test_an_outcome_about_hostile_text_holds_no_nul_and_stays_bounded() -> None:
    outcome = operation_outcome(
        diagnostics="bad \x00 page", url="https://ehr.example.org/fhir/x\x00" + "y" * 100_000
    )
    issue = outcome["issue"][0]
    assert "\x00" not in issue["diagnostics"]
    assert issue["diagnostics"] == "bad \ufffd page"
    assert "\x00" not in issue["details"]["text"]
    assert len(issue["details"]["text"]) <= MAX_DIAGNOSTICS
