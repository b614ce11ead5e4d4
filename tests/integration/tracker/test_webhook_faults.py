"""Webhook faults: duplicates, replays, bad signatures, unknown tasks, the tracker being down."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import httpx
import pytest

from ehiconnect.signing import generate_secret
from ehiconnect.testing.servers import ThreadedServer, free_port, serve_in_thread
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerJobEvent, TrackerWebhook
from ehiconnect.tracker.process import open_tracker
from ehiconnect.tracker.receiver import build_tracker_app
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import TrackerSettings
from tests.integration.tracker.conftest import drain
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import count, forward, job_of, widget_complete
from tests.integration.tracker.records import patient_record, to_ndjson


async def _exported(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> tuple[str, str]:
    """A consented connection whose export was requested: (connection id, task id)."""
    connection_id = platform.add_connection()
    assert forward(receiver, widget_complete(connection_id)).status_code == 202
    await drain(tracker)
    return connection_id, platform.task_for(connection_id).task_id


async def test_duplicated_webhook_is_processed_once(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    data = platform.complete(task_id, to_ndjson(patient_record(observations=5)))
    url = f"{receiver.url}/webhooks"

    first = platform.send_webhook(url, "patient.ehi_export_success", data, msg_id="msg_dup")
    second = platform.send_webhook(url, "patient.ehi_export_success", data, msg_id="msg_dup")
    await drain(tracker)

    assert first.status_code == second.status_code == 200
    assert second.json()["data"]["duplicate"] is True
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED
    assert await count(tracker, TrackerWebhook) == 1
    assert platform.download_ranges == [None]  # downloaded once
    success_events = await count(
        tracker,
        TrackerJobEvent,
        TrackerJobEvent.job_id == job.job_id,
        TrackerJobEvent.outcome == "success",
    )
    assert success_events == 1


async def test_replayed_old_webhook_is_rejected(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    data = platform.complete(task_id, to_ndjson(patient_record(observations=2)))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)

    response = platform.send_webhook(
        f"{receiver.url}/webhooks", "patient.ehi_export_success", data, timestamp=old
    )
    await drain(tracker)

    assert response.status_code == 401
    assert "tolerance" in response.json()["error_description"]
    assert await count(tracker, TrackerWebhook) == 0
    assert (await job_of(tracker, connection_id)).state == JobState.EXPORT_REQUESTED


async def test_webhook_within_tolerance_is_accepted(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    _, task_id = await _exported(platform, receiver, tracker)
    data = platform.complete(task_id, to_ndjson(patient_record(observations=2)))
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4)
    response = platform.send_webhook(
        f"{receiver.url}/webhooks", "patient.ehi_export_success", data, timestamp=recent
    )
    assert response.status_code == 200


async def test_bad_signature_is_rejected(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    data = platform.complete(task_id, to_ndjson(patient_record(observations=2)))

    response = platform.send_webhook(
        f"{receiver.url}/webhooks", "patient.ehi_export_success", data, secret=generate_secret()
    )
    unsigned = httpx.post(f"{receiver.url}/webhooks", json={"type": "x", "data": {}}, timeout=10)
    await drain(tracker)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert unsigned.status_code == 401
    assert await count(tracker, TrackerWebhook) == 0
    assert (await job_of(tracker, connection_id)).state == JobState.EXPORT_REQUESTED


async def test_webhook_for_unknown_task_is_flagged_not_trusted(
    platform: FakePlatform, receiver: ThreadedServer, tracker: TrackerRuntime
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    body = to_ndjson(patient_record(observations=2))
    data = platform.complete(task_id, body)
    stranger = {**data, "task_id": uuid.uuid4().hex}
    wrong_connection = {**data, "org_connection_id": str(uuid.uuid4())}
    url = f"{receiver.url}/webhooks"

    assert platform.send_webhook(url, "patient.ehi_export_success", stranger).status_code == 200
    assert (
        platform.send_webhook(url, "patient.ehi_export_success", wrong_connection).status_code
        == 200
    )
    await drain(tracker)

    flagged = {
        "unknown_task": await count(tracker, TrackerWebhook, TrackerWebhook.flag == "unknown_task"),
        "connection_mismatch": await count(
            tracker, TrackerWebhook, TrackerWebhook.flag == "connection_mismatch"
        ),
    }
    assert flagged == {"unknown_task": 1, "connection_mismatch": 1}
    assert (await job_of(tracker, connection_id)).state == JobState.EXPORT_REQUESTED
    assert platform.download_ranges == []


async def test_tracker_down_while_platform_retries(
    platform: FakePlatform,
    tracker_settings: TrackerSettings,
    database_url: str,
    tmp_path: Path,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
) -> None:
    connection_id, task_id = await _exported(platform, receiver, tracker)
    data = platform.complete(task_id, to_ndjson(patient_record(observations=3)))
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks"

    with pytest.raises(httpx.ConnectError):  # the tracker is down: delivery fails, platform retries
        platform.send_webhook(url, "patient.ehi_export_success", data, msg_id="msg_retry")

    app = build_tracker_app(
        lambda: open_tracker(tracker_settings, database_url, tmp_path), tracker_settings
    )
    with serve_in_thread(app, port=port):  # back up on the same address
        retried = platform.send_webhook(url, "patient.ehi_export_success", data, msg_id="msg_retry")
        again = platform.send_webhook(url, "patient.ehi_export_success", data, msg_id="msg_retry")
    await drain(tracker)

    assert retried.status_code == 200
    assert again.json()["data"]["duplicate"] is True
    assert (await job_of(tracker, connection_id)).state == JobState.INGESTED
    assert platform.download_ranges == [None]
