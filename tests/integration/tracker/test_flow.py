"""Consent → export request → webhook → download → ingest → notification, over real HTTP."""

from __future__ import annotations

import email
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from ehiconnect.testing.servers import ThreadedServer, free_port
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerFhirResource
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import NotifySettings, TrackerSettings
from tests.integration.tracker.conftest import FHIR_AUTH, STITCH_TOKEN, drain
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import consent_kinds, count, forward, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson


class MailBox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[MailBox, int]]:
    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def tracker_settings(
    tracker_settings: TrackerSettings, mailbox: tuple[MailBox, int]
) -> TrackerSettings:
    return tracker_settings.model_copy(
        update={
            "notify": NotifySettings(
                smtp_host="127.0.0.1",
                smtp_port=mailbox[1],
                mail_from="records@tracker.test",
                email_of_external_id={"user-42": "patient@example.test"},
            )
        }
    )


async def test_consent_to_ingested_records_and_email(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    mailbox: tuple[MailBox, int],
    tmp_path: Path,
) -> None:
    connection_id = platform.add_connection()
    payload = widget_complete(connection_id)

    first = forward(receiver, payload)
    again = forward(receiver, payload)  # the frontend retried: acknowledged, not recorded twice
    assert first.status_code == 202, first.text
    assert first.json()["data"]["recorded"] is True
    assert again.status_code == 200
    assert again.json()["data"]["recorded"] is False

    await drain(tracker)
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.EXPORT_REQUESTED
    assert job.export_requested_at is not None
    assert platform.export_requests == 1
    assert await consent_kinds(tracker, connection_id) == ["widget", "confirmed"]

    resources = patient_record("p1", observations=30)
    data = platform.complete(platform.task_for(connection_id).task_id, to_ndjson(resources))
    delivered = platform.send_webhook(
        f"{receiver.url}/webhooks", "patient.ehi_export_success", data
    )
    assert delivered.status_code == 200, delivered.text

    await drain(tracker)
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, (job.failed_step, job.failure_description)
    assert job.downloaded_at is not None
    assert job.ingested_at is not None
    assert job.notified_at is not None

    search = httpx.get(
        f"{receiver.url}/fhir/Observation",
        params={"patient": "p1", "_count": 5},
        headers=FHIR_AUTH,
        timeout=10,
    )
    assert search.status_code == 200
    bundle = search.json()
    assert bundle["total"] == 30
    assert len(bundle["entry"]) == 5
    by_code = httpx.get(
        f"{receiver.url}/fhir/Observation",
        params={"patient": "Patient/p1", "code": "http://loinc.org|8867-4", "date": "ge2025-06"},
        headers=FHIR_AUTH,
        timeout=10,
    ).json()
    expected = [
        r
        for r in resources
        if r["resourceType"] == "Observation"
        and r["code"]["coding"][0]["code"] == "8867-4"
        and r["effectiveDateTime"] >= "2025-06"
    ]
    assert by_code["total"] == len(expected) > 0

    observations = str(tmp_path / "parquet" / "Observation" / "*.parquet")
    db = duckdb.connect()
    rows = db.execute(
        "select count(*), count(distinct id) from read_parquet(?)", [observations]
    ).fetchone()
    assert rows == (30, 30)
    # Ingested in batches of 10 (ingest_batch_size) into the store, but Parquet cuts its own
    # larger batches: one file per resource type here, not one per type and batch of 10.
    assert len(list((tmp_path / "parquet" / "Observation").glob("*.parquet"))) == 1
    heart_rates = db.execute(
        "select count(*) from read_parquet(?) "
        "where list_contains(codes, '8867-4') and patient_id = 'p1'",
        [observations],
    ).fetchone()
    assert heart_rates == (15,)

    box, _ = mailbox
    assert box.recipients == [["patient@example.test"]]
    message = box.messages[0]
    assert message["Subject"] == "Your records from Harbor Health (Sandbox) are ready"
    assert "34 items" in message.get_payload()


async def test_email_names_the_health_system_generically_when_the_catalog_cannot(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    mailbox: tuple[MailBox, int],
) -> None:
    platform.brand_names.clear()  # the brand left the catalog: never show its opaque id
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    data = platform.complete(
        platform.task_for(connection_id).task_id, to_ndjson(patient_record(observations=1))
    )
    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)

    box, _ = mailbox
    [message] = box.messages
    assert message["Subject"] == "Your records from your health system are ready"
    assert "brand-harbor" not in message.get_payload()


async def test_a_newer_export_of_the_connection_replaces_its_parquet_snapshot(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, tmp_path: Path
) -> None:
    connection_id = platform.add_connection()
    observations = str(tmp_path / "parquet" / "Observation" / "*.parquet")

    def parquet_observations() -> tuple[int, int] | None:
        query = "select count(*), count(distinct id) from read_parquet(?)"
        return duckdb.connect().execute(query, [observations]).fetchone()

    for sent, event_date in ((10, "2026-11-29T02:00:00Z"), (4, "2026-11-29T03:00:00Z")):
        # A consent (the first, then a reconnect) starts a job; its export is a whole snapshot.
        consent = widget_complete(connection_id) | {"date": event_date}
        assert forward(receiver, consent).status_code == 202
        await drain(tracker)
        task = [t for t in platform.tasks.values() if t.org_connection_id == connection_id][-1]
        data = platform.complete(task.task_id, to_ndjson(patient_record(observations=sent)))
        platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
        await drain(tracker)
        assert parquet_observations() == (sent, sent)  # the latest snapshot, once

    # The FHIR store keeps every version it saw (upserts), Parquet the latest export.
    assert (
        await count(
            tracker, TrackerFhirResource, TrackerFhirResource.resource_type == "Observation"
        )
        == 10
    )


def test_the_fhir_api_answers_only_with_its_token(
    receiver: ThreadedServer, tracker_settings: TrackerSettings
) -> None:
    url = f"{receiver.url}/fhir/Observation"
    assert httpx.get(url, headers=FHIR_AUTH, timeout=10).status_code == 200
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {STITCH_TOKEN}"},
    ):
        refused = httpx.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401
        assert "fhir_api_token" in refused.json()["error_description"]
    assert httpx.get(f"{url}/o1", timeout=10).status_code == 401

    tracker_settings.fhir_api_token = SecretStr("")  # not configured: the API is off
    off = httpx.get(url, headers=FHIR_AUTH, timeout=10)
    assert off.status_code == 403
    assert off.json()["error"] == "fhir_api_disabled"
