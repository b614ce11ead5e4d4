"""Consent by webhook, revocation, manual exports, and the retention of downloaded files."""

from __future__ import annotations

from pathlib import Path

from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker.download_step import purge_downloads
from ehiconnect.tracker.export_steps import request_export
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.runtime import TrackerRuntime
from tests.integration.tracker.conftest import drain
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import consent_kinds, job_of
from tests.integration.tracker.records import patient_record, to_ndjson


async def test_connection_webhook_records_consent_and_revocation_is_logged(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id = platform.add_connection()
    url = f"{receiver.url}/webhooks"
    success = {
        "org_connection_id": connection_id,
        "brand_id": "brand-harbor",
        "portal_id": "portal-1",
        "endpoint_id": "endpoint-1",
        "connection_status": "authorized",
        "platform_type": "sandbox",
        "scope": "patient/*.read",
        "external_id": "user-7",
    }
    assert platform.send_webhook(url, "patient.connection_success", success).status_code == 200
    await drain(tracker)
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.EXPORT_REQUESTED
    assert job.external_id == "user-7"

    revoked = {**success, "connection_status": "revoked"}
    assert platform.send_webhook(url, "patient.authorization_revoked", revoked).status_code == 200
    await drain(tracker)
    assert await consent_kinds(tracker, connection_id) == ["webhook", "confirmed", "revoked"]


async def test_without_auto_export_the_app_asks_for_it(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    tracker.settings.auto_export = False
    connection_id = platform.add_connection()
    url = f"{receiver.url}/webhooks"
    data = {"org_connection_id": connection_id, "connection_status": "authorized"}
    platform.send_webhook(url, "patient.connection_success", data)
    await drain(tracker)
    assert (await job_of(tracker, connection_id)).state == JobState.CONSENTED
    assert platform.export_requests == 0

    await request_export(tracker, connection_id)
    await drain(tracker)
    assert (await job_of(tracker, connection_id)).state == JobState.EXPORT_REQUESTED
    assert platform.export_requests == 1


async def test_downloads_are_deleted_after_the_trackers_retention(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime, tmp_path: Path
) -> None:
    connection_id = platform.add_connection()
    platform.send_webhook(
        f"{receiver.url}/webhooks",
        "patient.connection_success",
        {"org_connection_id": connection_id},
    )
    await drain(tracker)
    data = platform.complete(
        platform.task_for(connection_id).task_id, to_ndjson(patient_record(observations=3))
    )
    platform.send_webhook(f"{receiver.url}/webhooks", "patient.ehi_export_success", data)
    await drain(tracker)
    job = await job_of(tracker, connection_id)
    stored = tmp_path / "store" / job.files[0]["key"]
    assert stored.exists()

    assert await purge_downloads(tracker) == 0  # within retention (7 days by default)
    async with tracker.database.transaction() as session:
        row = await session.get(type(job), job.job_id)
        assert row is not None
        row.files_expire_at = tracker.clock.now()
    assert await purge_downloads(tracker) == 1
    assert not stored.exists()
    assert (await job_of(tracker, connection_id)).state == JobState.INGESTED
