"""Packaging a staging area into the export's NDJSON file, on in-memory ports: the staging area
(`exports.memory`), the blob store (`storage.memory`) and the health system (`crawler.memory`).

One patient's staged record: resources of several types (one a Binary the server returned as a
resource), an attachment the crawl staged in a blob, one it left to packaging (downloaded here,
larger than a chunk), one whose download fails, and one whose Binary is already a resource.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ehiconnect.crawler.memory import MemoryAttachment, MemoryFhirSource
from ehiconnect.exports import package
from ehiconnect.exports.memory import MemoryStagedExport
from ehiconnect.exports.package import (
    PackagedFile,
    discard_partial,
    package_errors,
    package_export,
)
from ehiconnect.exports.ports import StagedAttachment
from ehiconnect.storage.memory import MemoryBlobStore

TASK = "0123456789abcdef0123456789abcdef"
BASE = "https://ehr.example.org/fhir/"
NOTE = b"a clinical note."
SCAN = os.urandom(package.CHUNK_SIZE * 2 + 5)  # several chunks, not a multiple of 3
RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Observation", "id": "o2", "subject": {"reference": "Patient/p1"}},
    {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}},
    {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}},
    {"resourceType": "Practitioner", "id": "pr1"},
    {"resourceType": "Organization", "id": "org1"},
    {"resourceType": "Patient", "id": "p1"},
    {"resourceType": "Binary", "id": "b-server", "contentType": "text/plain", "data": "aGk="},
]


def attachment(binary_id: str, *, blob_key: str | None = None) -> StagedAttachment:
    return StagedAttachment(
        binary_id=binary_id,
        source_url=f"{BASE}Binary/{binary_id}",
        content_type="application/pdf" if blob_key is None else "text/plain",
        blob_key=blob_key,
        done=blob_key is not None,
    )


def staged_record() -> MemoryStagedExport:
    return MemoryStagedExport(
        RESOURCES,
        [
            attachment("att-a", blob_key=f"staging/{TASK}/att-a"),
            attachment("att-c"),  # left to packaging: downloaded into its line
            attachment("att-d"),  # the health system answers 404
            attachment("b-server", blob_key=f"staging/{TASK}/b-server"),  # already a resource
        ],
    )


def health_system() -> MemoryFhirSource:
    return MemoryFhirSource(
        BASE,
        attachments={"Binary/att-c": MemoryAttachment("application/pdf", SCAN)},
        failures={"Binary/att-d": 404},
        chunk_size=300_001,
    )


def blob_store() -> MemoryBlobStore:
    blobs = MemoryBlobStore()
    blobs.objects[f"staging/{TASK}/att-a"] = NOTE
    blobs.objects[f"staging/{TASK}/b-server"] = b"hi"
    return blobs


@pytest.fixture(autouse=True)
def work_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The memory store has no staging path: packaging builds the file in the temp directory."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def file_id() -> str:
    return "2026-01-01-test.jsonl"


async def packaged_lines(
    staged: MemoryStagedExport, blobs: MemoryBlobStore, **options: Any
) -> tuple[PackagedFile, list[dict[str, Any]]]:
    packaged = await package_export(staged, blobs, TASK, new_file_id=file_id, **options)
    body = blobs.objects[packaged.key]
    assert body.endswith(b"\n")
    return packaged, [orjson.loads(line) for line in body.splitlines()]


async def test_every_resource_once_leading_types_first_then_attachments_as_binaries() -> None:
    staged, blobs = staged_record(), blob_store()
    _, lines = await packaged_lines(staged, blobs, source=health_system())

    ids = [(line["resourceType"], line["id"]) for line in lines]
    assert ids == [
        ("Patient", "p1"),
        ("Organization", "org1"),
        ("Practitioner", "pr1"),
        ("Binary", "b-server"),
        ("Condition", "c1"),
        ("Observation", "o1"),
        ("Observation", "o2"),
        ("Binary", "att-a"),
        ("Binary", "att-c"),
    ]
    assert len(set(ids)) == len(ids)
    assert lines[:7] == sorted(RESOURCES, key=lambda r: ids.index((r["resourceType"], r["id"])))


async def test_attachments_are_inline_binaries_with_their_bytes_in_base64() -> None:
    staged, blobs = staged_record(), blob_store()
    _, lines = await packaged_lines(staged, blobs, source=health_system())
    binaries = {line["id"]: line for line in lines if line["resourceType"] == "Binary"}

    assert base64.b64decode(binaries["att-a"]["data"]) == NOTE
    assert base64.b64decode(binaries["att-c"]["data"]) == SCAN
    assert binaries["att-a"]["contentType"] == "text/plain"
    assert binaries["att-c"]["contentType"] == "application/pdf"
    assert binaries["att-c"]["meta"]["source"] == f"{BASE}Binary/att-c"
    assert binaries["b-server"]["data"] == "aGk="  # the server's own, not the staged blob


async def test_the_file_is_committed_with_its_size_sha256_and_stats() -> None:
    staged, blobs = staged_record(), blob_store()
    packaged, lines = await packaged_lines(staged, blobs, source=health_system())
    body = blobs.objects[packaged.key]

    assert packaged.key == f"exports/{TASK}/{file_id()}"
    assert packaged.file_id == file_id()
    assert (packaged.size, packaged.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    by_type = Counter(line["resourceType"] for line in lines)
    assert packaged.by_resource_type == dict(sorted(by_type.items()))
    assert packaged.by_resource_type["Binary"] == 3  # one returned as a resource, two attached
    assert packaged.total_resources == len(lines) == 9


async def test_a_failed_download_is_cut_out_of_the_file_and_reported() -> None:
    staged, blobs = staged_record(), blob_store()
    _, lines = await packaged_lines(staged, blobs, source=health_system())

    assert "att-d" not in {line["id"] for line in lines}
    [outcome] = await staged.errors()
    assert outcome["resourceType"] == "OperationOutcome"
    assert f"{BASE}Binary/att-d" in orjson.dumps(outcome).decode()

    count, size = await package_errors(staged, blobs, f"exports/{TASK}/errors.ndjson")
    assert count == 1
    report = blobs.objects[f"exports/{TASK}/errors.ndjson"]
    assert (size, [orjson.loads(line) for line in report.splitlines()]) == (len(report), [outcome])


async def test_a_clean_export_has_no_error_report() -> None:
    staged, blobs = staged_record(), blob_store()
    assert await package_errors(staged, blobs, f"exports/{TASK}/errors.ndjson") == (0, 0)
    assert f"exports/{TASK}/errors.ndjson" not in blobs.objects


async def test_without_a_source_the_attachments_left_to_packaging_are_left_out() -> None:
    staged, blobs = staged_record(), blob_store()
    _, lines = await packaged_lines(staged, blobs)
    assert [line["id"] for line in lines if line["resourceType"] == "Binary"] == [
        "b-server",
        "att-a",
    ]


async def test_progress_counts_the_downloaded_bytes() -> None:
    staged, blobs = staged_record(), blob_store()
    counted: list[int] = []

    async def on_progress(*, attachment_bytes: int = 0) -> None:
        counted.append(attachment_bytes)

    await packaged_lines(staged, blobs, source=health_system(), on_progress=on_progress)
    assert counted == [len(SCAN)]  # staged attachments were counted by the crawl


class _BrokenOnce(MemoryBlobStore):
    """A store whose reads of one key fail the first time, like a worker dying mid-read."""

    def __init__(self, broken_key: str) -> None:
        super().__init__()
        self._broken_key: str | None = broken_key

    async def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if key == self._broken_key:
            self._broken_key = None
            raise ConnectionError("the worker died")
        async for chunk in super().open_reader(key, start, end):
            yield chunk


async def test_a_resumed_packaging_writes_the_same_file(
    monkeypatch: pytest.MonkeyPatch, work_dir: Path
) -> None:
    monkeypatch.setattr(package, "CHECKPOINT_BYTES", 1)  # a checkpoint between attachments
    last = f"staging/{TASK}/att-e"

    def record() -> MemoryStagedExport:
        staged = staged_record()
        staged.staged_attachments["att-e"] = attachment("att-e", blob_key=last)
        return staged

    reference_blobs = blob_store()
    reference_blobs.objects[last] = NOTE
    reference = await package_export(
        record(), reference_blobs, TASK, new_file_id=file_id, source=health_system()
    )

    staged = record()
    blobs = _BrokenOnce(last)  # dies after att-a, att-c (downloaded) and att-d (failed)
    blobs.objects.update(blob_store().objects)
    blobs.objects[last] = NOTE
    with pytest.raises(ConnectionError):
        await package_export(staged, blobs, TASK, new_file_id=file_id, source=health_system())
    assert staged.checkpoints_saved >= 2  # after the resources, and between attachments
    assert list(work_dir.rglob("*.partial"))  # the partial file stays for the next run

    def no_new_name() -> str:
        raise AssertionError("a resumed run keeps the file name the first run chose")

    resumed = await package_export(
        staged, blobs, TASK, new_file_id=no_new_name, source=health_system()
    )
    assert resumed == reference
    assert blobs.objects[resumed.key] == reference_blobs.objects[reference.key]


async def test_discarding_removes_the_partial_file(
    monkeypatch: pytest.MonkeyPatch, work_dir: Path
) -> None:
    monkeypatch.setattr(package, "CHECKPOINT_BYTES", 1)
    staged = staged_record()
    blobs = _BrokenOnce(f"staging/{TASK}/att-a")
    blobs.objects.update(blob_store().objects)
    with pytest.raises(ConnectionError):
        await package_export(staged, blobs, TASK, new_file_id=file_id)
    assert list(work_dir.rglob("*.partial"))

    await discard_partial(staged, blobs, TASK)
    assert not list(work_dir.rglob("*.partial"))
    await discard_partial(staged, blobs, TASK)  # idempotent
    await discard_partial(MemoryStagedExport(), blobs, TASK)  # nothing packaged: nothing to do
