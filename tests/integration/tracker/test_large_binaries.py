"""Large inline attachments: lifted out of the file before ingesting, never held whole."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest

from ehiconnect.fhir.binary import binary_line_parts
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.lift_step import STORED_DATA_URL, stored_data
from ehiconnect.tracker.models import TrackerFhirResource
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import FhirServerSinkSettings
from tests.integration.tracker.conftest import FHIR_AUTH, drain
from tests.integration.tracker.fake_fhir_server import FakeFhirServer
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import count, forward, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson

THRESHOLD = 64 * 1024


@pytest.fixture
def fhir(tracker: TrackerRuntime) -> Iterator[FakeFhirServer]:
    server = FakeFhirServer()
    with serve_in_thread(server.app()) as running:
        tracker.settings.fhir_server = FhirServerSinkSettings(
            enabled=True, base_url=f"{running.url}/fhir", batch_size=5
        )
        tracker.settings.inline_data_max_bytes = THRESHOLD
        yield server


async def _export_of(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, body: bytes
) -> str:
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    data = platform.complete(platform.task_for(connection_id).task_id, body)
    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)
    return connection_id


def scan_line(payload: bytes) -> bytes:
    parts = binary_line_parts("scan-1", "application/dicom", "https://ehr/Binary/9", [payload])
    return b"".join(parts)


async def test_large_binary_lands_in_every_sink_without_its_payload_inline(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    fhir: FakeFhirServer,
    tmp_path: Path,
) -> None:
    payload = os.urandom(1_000_000)  # 1.3 MB of base64 on one line, threshold 64 KiB
    record = patient_record(observations=8)
    document = {
        "resourceType": "DocumentReference",
        "id": "scan-doc",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": {"contentType": "application/dicom", "url": "Binary/scan-1"}}],
    }
    # The DocumentReference before its Binary, as the platform writes attachments last.
    body = to_ndjson([*record, document]) + scan_line(payload)

    connection_id = await _export_of(platform, receiver, tracker, body)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, job.failure_description
    [file] = job.files
    assert file["ingest_key"] != file["key"]
    [payload_key] = file["payload_keys"]
    stored = b"".join([chunk async for chunk in tracker.blobs.open_reader(payload_key)])
    assert stored == payload  # decoded, byte for byte
    original = b"".join([chunk async for chunk in tracker.blobs.open_reader(file["key"])])
    assert original == body  # the download itself is untouched

    # The FHIR store keeps the Binary with a pointer to its payload, not the payload.
    async with tracker.database.transaction() as session:
        row = await session.get(TrackerFhirResource, ("Binary", "scan-1"))
        assert row is not None
        binary = row.body
    assert "data" not in binary
    assert binary["contentType"] == "application/dicom"
    assert binary["meta"]["source"] == "https://ehr/Binary/9"
    assert stored_data(binary) == (payload_key, len(payload), hashlib.sha256(payload).hexdigest())
    assert await count(tracker, TrackerFhirResource) == len(record) + 2
    # Read over the tracker's FHIR API: the content itself, or the resource when JSON is asked.
    raw = httpx.get(f"{receiver.url}/fhir/Binary/scan-1", headers=FHIR_AUTH, timeout=10)
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/dicom"
    assert raw.content == payload
    as_json = httpx.get(
        f"{receiver.url}/fhir/Binary/scan-1",
        headers={**FHIR_AUTH, "Accept": "application/fhir+json"},
        timeout=10,
    )
    assert as_json.json()["id"] == "scan-1"
    assert "data" not in as_json.json()

    # Parquet: the same pointer, no payload.
    rows = (
        duckdb.connect()
        .execute(
            "select resource from read_parquet(?)", [str(tmp_path / "parquet/Binary/*.parquet")]
        )
        .fetchall()
    )
    parquet_binaries = {orjson.loads(r[0])["id"]: orjson.loads(r[0]) for r in rows}
    assert STORED_DATA_URL in str(parquet_binaries["scan-1"]["meta"])
    assert "data" not in parquet_binaries["scan-1"]

    # The FHIR server got the payload as a raw Binary upload, and the document resolves to it.
    assert fhir.raw_binaries == {"scan-1": payload}
    assert fhir.store["DocumentReference/scan-doc"]["content"][0]["attachment"]["url"] == (
        "Binary/scan-1"
    )
    assert len(fhir.store) == len(record) + 2
    small = fhir.store["Binary/ehi-2002"]  # a small Binary still travels inline in a Bundle
    assert small["data"] == record[2]["data"]


async def test_a_damaged_inline_payload_fails_the_ingest_naming_the_line(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    tracker.settings.inline_data_max_bytes = THRESHOLD
    broken = scan_line(os.urandom(200_000)).replace(b"A", b"!", 1)
    connection_id = await _export_of(
        platform, receiver, tracker, to_ndjson(patient_record(observations=2)) + broken
    )

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.FAILED
    assert (job.failed_step, job.failure_reason) == ("ingest", "file_damaged")
    assert "line 7" in (job.failure_description or "")
    assert "base64" in (job.failure_description or "")
    assert job.notified_at is not None
