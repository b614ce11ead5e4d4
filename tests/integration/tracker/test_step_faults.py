"""Faults inside steps: interrupted download and ingest, failed exports, a lost webhook."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker import export_steps, ingest_step
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerFhirResource, TrackerFhirVersion
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import FhirServerSinkSettings
from ehiconnect.tracker.sinks.base import Sink
from tests.integration.tracker.conftest import drain
from tests.integration.tracker.fake_fhir_server import FakeFhirServer
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import count, forward, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson


async def _exported(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> tuple[str, str]:
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    return connection_id, platform.task_for(connection_id).task_id


async def test_interrupted_download_resumes_with_range_and_checks_sha256(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, tmp_path: Path
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    body = to_ndjson(patient_record(observations=2000))  # several 64 KiB chunks
    data = platform.complete(task_id, body)
    platform.cut_next_download_after = len(body) // 2

    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, job.failure_description
    first, resumed = platform.download_ranges
    assert first is None
    assert resumed is not None
    kept = int(resumed.removeprefix("bytes=").rstrip("-"))
    assert 0 < kept < len(body)
    stored = (tmp_path / "store" / job.files[0]["key"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(body).hexdigest()
    assert job.files[0]["sha256"] == hashlib.sha256(body).hexdigest()
    assert await count(tracker, TrackerFhirResource) == 2004


async def test_corrupt_download_is_discarded_and_fetched_again(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    body = to_ndjson(patient_record(observations=10))
    data = platform.complete(task_id, body)
    data["download_links"][0]["sha256"] = "0" * 64  # what the platform announced is not what comes

    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.FAILED
    assert job.failed_step == "download"
    assert job.failure_reason == "attempts_exhausted"
    assert "sha256" in (job.failure_description or "")
    assert platform.download_ranges == [None] * 4  # each try started over, none resumed bad bytes
    assert await count(tracker, TrackerFhirResource) == 0


class CrashAfter:
    """Wraps a sink and dies (like a killed worker) after `batches` batches."""

    def __init__(self, inner: Sink, batches: int) -> None:
        self.inner, self.left, self.name = inner, batches, inner.name
        self.batching = inner.batching
        self.received = 0

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None:
        if self.left == 0:
            raise KeyboardInterrupt("worker killed mid-file")
        self.left -= 1
        self.received += len(resources)
        await self.inner.write_batch(resources, batch_key=batch_key)

    async def close(self) -> None:
        await self.inner.close()


async def test_interrupted_ingest_restarts_without_loss_or_duplicates(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, tmp_path: Path
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    resources = patient_record(observations=95)  # 99 resources, batches of 10
    tracker.settings.fhir_store_enabled = False  # the first pass is driven by hand below
    tracker.settings.parquet_enabled = False
    data = platform.complete(task_id, to_ndjson(resources))
    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)  # downloaded, then "ingested" into no sink at all
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED

    tracker.settings.fhir_store_enabled = True
    tracker.settings.parquet_enabled = True
    async with tracker.database.transaction() as session:
        row = await session.get(type(job), job.job_id, with_for_update=True)
        assert row is not None
        row.state = JobState.DOWNLOADED  # as if the sinks had just been turned on

    sinks = ingest_step.enabled_sinks(tracker)
    crashing: list[Sink] = [CrashAfter(sink, batches=3) for sink in sinks]
    with pytest.raises(KeyboardInterrupt):
        await ingest_step.ingest(tracker, job.job_id, crashing)
    assert (await job_of(tracker, connection_id)).state == JobState.INGESTING

    counting = [CrashAfter(sink, batches=-1) for sink in ingest_step.enabled_sinks(tracker)]
    await ingest_step.ingest(tracker, job.job_id, list(counting))

    assert (await job_of(tracker, connection_id)).state == JobState.INGESTED
    # The store resumed after its 3 checkpointed batches; Parquet, never reached, did all 99.
    assert [c.received for c in counting] == [99 - 30, 99]
    assert await count(tracker, TrackerFhirResource) == 99
    assert await count(tracker, TrackerFhirVersion) == 0  # nothing superseded, nothing doubled
    observations = str(tmp_path / "parquet" / "Observation" / "*.parquet")
    rows = (
        duckdb.connect()
        .execute("select count(*), count(distinct id) from read_parquet(?)", [observations])
        .fetchone()
    )
    assert rows == (95, 95)

    await ingest_step.ingest(tracker, job.job_id)  # a re-run of a finished ingest adds nothing
    assert await count(tracker, TrackerFhirResource) == 99


async def test_export_failure_retried_by_reason(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    url = f"{receiver.url}/webhooks"
    hopeless, hopeless_task = await _exported(platform, receiver, tracker)
    transient, transient_task = await _exported(platform, receiver, tracker)

    platform.send_webhook(
        url, "patient.ehi_export_failed", platform.fail(hopeless_task, "scope_patient_missing")
    )
    platform.send_webhook(
        url, "patient.ehi_export_failed", platform.fail(transient_task, "timeout")
    )
    await drain(tracker)

    gave_up = await job_of(tracker, hopeless)
    assert gave_up.state == JobState.FAILED
    assert gave_up.failure_reason == "scope_patient_missing"
    assert gave_up.export_requests == 1
    retried = await job_of(tracker, transient)
    assert retried.state == JobState.EXPORT_REQUESTED
    assert retried.export_requests == 2
    assert retried.task_id != transient_task


async def test_watchdog_polls_when_no_webhook_arrives(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    platform.complete(task_id, to_ndjson(patient_record(observations=4)))  # webhook lost
    tracker.settings.watchdog_after_minutes = 0

    assert await export_steps.watchdog(tracker) == 1
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED
    assert await count(tracker, TrackerFhirResource) == 8


async def test_redirect_to_storage_is_followed_without_the_platform_credentials(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    data = platform.complete(task_id, to_ndjson(patient_record(observations=3)))
    platform.redirect_downloads = True

    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    assert (await job_of(tracker, connection_id)).state == JobState.INGESTED
    assert platform.presigned_authorization == [None]


async def test_export_whose_files_are_gone_is_requested_again(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    data = platform.complete(task_id, to_ndjson(patient_record(observations=3)))
    platform.tasks[task_id].status = "expired"  # retention passed before the download

    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    job = await job_of(tracker, connection_id)
    assert job.state == JobState.EXPORT_REQUESTED
    assert job.export_requests == 2
    assert job.task_id not in (None, task_id)


async def test_fhir_server_ingest_resolves_forward_references_and_resumes_mid_plan(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    """A file listing the Patient last, with an Encounter <-> Condition cycle, into a FHIR
    server that refuses unresolved references, four resources per transaction, killed after
    three transactions and restarted: every resource lands once."""
    connection_id, task_id = await _exported(platform, receiver, tracker)
    resources = patient_record(observations=20)
    resources += [
        {
            "resourceType": "Encounter",
            "id": "enc-1",
            "subject": {"reference": "Patient/p1"},
            "diagnosis": [{"condition": {"reference": "Condition/cond-1"}}],
        },
        {
            "resourceType": "Condition",
            "id": "cond-1",
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/enc-1"},
        },
    ]
    resources.reverse()  # everything before the Patient it points at
    tracker.settings.fhir_store_enabled = False
    tracker.settings.parquet_enabled = False
    data = platform.complete(task_id, to_ndjson(resources))
    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED

    server = FakeFhirServer()
    with serve_in_thread(server.app()) as fhir:
        tracker.settings.fhir_server = FhirServerSinkSettings(
            enabled=True, base_url=f"{fhir.url}/fhir", batch_size=4
        )
        async with tracker.database.transaction() as session:
            row = await session.get(type(job), job.job_id, with_for_update=True)
            assert row is not None
            row.state = JobState.DOWNLOADED
        crashing: list[Sink] = [
            CrashAfter(s, batches=3) for s in ingest_step.enabled_sinks(tracker)
        ]
        with pytest.raises(KeyboardInterrupt):
            await ingest_step.ingest(tracker, job.job_id, crashing)
        assert server.requests == 3
        written_before = len(server.store)
        assert 9 <= written_before <= 12  # (a batch closes early before the 2-member cycle)

        counting = CrashAfter(ingest_step.enabled_sinks(tracker)[0], batches=-1)
        await ingest_step.ingest(tracker, job.job_id, [counting])

    assert (await job_of(tracker, connection_id)).state == JobState.INGESTED, (
        await job_of(tracker, connection_id)
    ).failure_description
    assert counting.received == len(resources) - written_before  # after the checkpointed three
    assert len(server.store) == len(resources) == 26
    assert set(server.versions.values()) == {1}
    condition = server.store["Condition/cond-1"]
    assert condition["encounter"] == {"reference": "Encounter/enc-1"}
