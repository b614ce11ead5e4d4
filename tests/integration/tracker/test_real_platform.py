"""The tracker against the real platform: no fake anywhere between the patient and the sinks.

The platform API and the sandbox health systems (the consent tests' fixtures), the platform's
own jobs (export crawl, webhook delivery), and the tracker (its HTTP app and its job worker) all
run here on one PostgreSQL, over loopback HTTP. A patient connects through the consent flow; the
customer's frontend forwards the widget's `patient.connection_success` event to the tracker; from
there the tracker confirms, exports, receives the signed webhook, downloads, verifies, ingests
into its three sinks (the built-in FHIR store, Parquet, and a FHIR R4 server: the spec-following
transaction endpoint of these tests), and emails the patient.

Platform jobs run on the `default` queue and the tracker's on the `tracker` queue, each drained
by its own worker: the platform's worker does not know the tracker's tasks, and the tracker's
worker gives them the tracker's runtime and settings.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from ehiconnect.clock import FrozenClock
from ehiconnect.exports.models import ExportTask
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.generator import expected_resources
from ehiconnect.testing.servers import ThreadedServer, free_port, serve_in_thread
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerFhirResource, TrackerWebhook
from ehiconnect.tracker.process import open_tracker
from ehiconnect.tracker.receiver import build_tracker_app
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import (
    FhirServerSinkSettings,
    NotifySettings,
    RetryPolicy,
    TrackerSettings,
)
from ehiconnect.webhooks import endpoints
from ehiconnect.webhooks.delivery import Deliverer
from ehiconnect.webhooks.models import WebhookAttempt, WebhookEvent
from ehiconnect.webhooks.senders import deliver_due
from tests.integration.consent import conftest as consent
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import persona_id
from tests.integration.tracker.conftest import FHIR_AUTH, FHIR_TOKEN, STITCH_TOKEN, drain
from tests.integration.tracker.fake_fhir_server import FakeFhirServer
from tests.integration.tracker.helpers import consent_kinds, job_events, job_of

pytestmark = pytest.mark.integration

# The real platform and sandbox, as the consent tests serve them. These names take the place of
# the fake platform of this directory's conftest for the tests of this module.
sandbox_app = consent.sandbox_app
sandbox = consent.sandbox
sandbox_state = consent.sandbox_state
platform_clock = consent.platform_clock
settings = consent.settings
api = consent.api
browser = consent.browser
org = consent.org
platform = consent.platform

EXTERNAL_ID = "acme-user-7"
PATIENT_EMAIL = "patient7@example.test"
# The fields of a connected account the widget puts in its events (ehi-stitch-element.js).
WIDGET_ACCOUNT_FIELDS = (
    "org_connection_id",
    "connection_status",
    "platform_type",
    "brand_id",
    "portal_id",
    "endpoint_id",
)
# The steps of a job that went all the way, as the ledger records them.
STEPS_DONE = [
    ("confirm", "consented"),
    ("confirm", "authorized"),
    ("export", "requested"),
    ("export", "success"),
    ("download", "done"),
    ("ingest", "done"),
    ("notify", "sent"),
]


# ---- the patient's mailbox -------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler keeping what it was sent."""

    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def fhir_server() -> Iterator[tuple[FakeFhirServer, str]]:
    """A FHIR R4 transaction endpoint: the third sink. Its base URL."""
    server = FakeFhirServer()
    with serve_in_thread(server.app()) as running:
        yield server, f"{running.url}/fhir"


# ---- the tracker, deployed beside the platform -------------------------------------------------


@pytest.fixture
def tracker_port() -> int:
    """Chosen before the tracker serves, so its webhook endpoint can be registered first."""
    return free_port()


@pytest.fixture
async def endpoint(
    runtime: Runtime, org: CreatedOrg, tracker_port: int
) -> endpoints.CreatedEndpoint:
    """The organization's test-mode webhook endpoint, pointing at the tracker's /webhooks."""
    async with runtime.database.transaction() as session:
        return await endpoints.add_endpoint(
            session,
            runtime.clock,
            runtime.cipher,
            org_id=org.org_id,
            api_mode="test",
            url=f"http://127.0.0.1:{tracker_port}/webhooks",
        )


@pytest.fixture
def fhir_batch_size() -> int:
    """Resources per FHIR transaction: the whole export in one."""
    return 1000


@pytest.fixture
def tracker_settings(
    fhir_batch_size: int,
    platform: Platform,
    endpoint: endpoints.CreatedEndpoint,
    smtp: tuple[Inbox, int],
    fhir_server: tuple[FakeFhirServer, str],
    tmp_path: Path,
) -> TrackerSettings:
    public_id, private_key = platform.auth("test")
    return TrackerSettings(
        platform_base_url=f"{platform.api.url}/v1",
        public_id=public_id,
        private_key=private_key,
        webhook_secrets=[endpoint.secret],
        stitch_events_token=STITCH_TOKEN,
        fhir_api_token=FHIR_TOKEN,
        retry=RetryPolicy(backoff_seconds=[0.0, 0.0, 0.0]),
        storage_dir=tmp_path / "tracker-store",
        parquet_enabled=True,
        parquet_dir=tmp_path / "parquet",
        ingest_batch_size=100,
        fhir_server=FhirServerSinkSettings(
            enabled=True, base_url=fhir_server[1], batch_size=fhir_batch_size
        ),
        notify=NotifySettings(
            smtp_host="127.0.0.1",
            smtp_port=smtp[1],
            mail_from="records@acme.test",
            email_of_external_id={EXTERNAL_ID: PATIENT_EMAIL},
        ),
    )


@pytest.fixture
async def tracker(
    tracker_settings: TrackerSettings, database_url: str, tmp_path: Path
) -> AsyncIterator[TrackerRuntime]:
    """The tracker's job side (its worker runs in the test's event loop via `drain`)."""
    async with open_tracker(tracker_settings, database_url, tmp_path / "tracker") as opened:
        yield opened


@dataclass
class TrackerService:
    """The tracker's HTTP app on a fixed port, which a test can take down and bring back."""

    settings: TrackerSettings
    database_url: str
    data_dir: Path
    port: int
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        assert self.server is None, "the tracker is already serving"
        app = build_tracker_app(
            lambda: open_tracker(self.settings, self.database_url, self.data_dir),
            self.settings,
        )
        server = ThreadedServer(app, port=self.port)
        server.start()
        self.server = server

    def down(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def forward(self, payload: dict[str, Any]) -> httpx.Response:
        """What the customer's backend does with the event its frontend got from the widget."""
        return httpx.post(
            f"{self.url}/stitch-events",
            json=payload,
            headers={"Authorization": f"Bearer {STITCH_TOKEN}"},
            timeout=10,
        )

    def search(self, resource_type: str, **params: str | int) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/fhir/{resource_type}", params=params, headers=FHIR_AUTH, timeout=10
        )
        assert response.status_code == 200, response.text
        bundle: dict[str, Any] = response.json()
        return bundle


@pytest.fixture
def tracker_service(
    tracker_settings: TrackerSettings, database_url: str, tmp_path: Path, tracker_port: int
) -> Iterator[TrackerService]:
    service = TrackerService(tracker_settings, database_url, tmp_path / "tracker", tracker_port)
    service.up()
    try:
        yield service
    finally:
        service.down()


# ---- steps -------------------------------------------------------------------------------------


def widget_event(result: dict[str, Any]) -> dict[str, Any]:
    """The widget's `patient.connection_success` event for a callback result, as the frontend
    forwards it: the widget's own JSON, with the app's user id beside it."""
    account = {name: result.get(name) for name in WIDGET_ACCOUNT_FIELDS}
    return {
        "api_mode": result["api_mode"],
        "event_type": "patient.connection_success",
        "data": account,
        "external_id": EXTERNAL_ID,
    }


async def run_platform_jobs(runtime: Runtime) -> None:
    """The platform's worker: exports and webhook deliveries, until its queue is empty."""
    await runtime.jobs.run_worker_async(
        queues=["default"],
        wait=False,
        install_signal_handlers=False,
        additional_context=runtime.job_context(),
    )
    await deliver_due(runtime.webhooks)  # no dispatcher runs here: send what is due


async def connect_and_hand_over(
    platform: Platform, service: TrackerService, tracker: TrackerRuntime, username: str
) -> str:
    """The patient connects; the tracker gets the widget event and requests the export."""
    result = platform.connect("harbor", username, external_id=EXTERNAL_ID)
    assert result["status"] == "success", result
    connection_id: str = result["org_connection_id"]
    handed = service.forward(widget_event(result))
    assert handed.status_code == 202, handed.text
    assert handed.json()["data"] == {"recorded": True, "org_connection_ids": [connection_id]}

    await drain(tracker)  # confirm (GET org_connection), then POST ehi-export
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.EXPORT_REQUESTED, (job.failed_step, job.failure_description)
    assert job.task_id is not None
    assert job.export_requests == 1
    return connection_id


async def event_of(runtime: Runtime, event_type: str, connection_id: str) -> WebhookEvent:
    async with runtime.database.transaction() as session:
        rows = list(
            await session.scalars(select(WebhookEvent).where(WebhookEvent.type == event_type))
        )
    [event] = [e for e in rows if e.data.get("org_connection_id") == connection_id]
    return event


async def attempts_of(runtime: Runtime, event_id: str) -> list[WebhookAttempt]:
    async with runtime.database.transaction() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id == event_id)
            .order_by(WebhookAttempt.id)  # in the order made (one test steps a clock ahead)
        )
        return list(rows)


async def received_webhooks(tracker: TrackerRuntime) -> list[TrackerWebhook]:
    async with tracker.database.transaction() as session:
        return list(
            await session.scalars(select(TrackerWebhook).order_by(TrackerWebhook.received_at))
        )


def observations_of(username: str) -> tuple[str, int]:
    """The persona's Patient id and how many Observations the sandbox generated for it."""
    kinds = list(expected_resources("harbor", persona_id("harbor", username)))
    [patient_id] = [rid for kind, rid in kinds if kind == "Patient"]
    return patient_id, sum(1 for kind, _ in kinds if kind == "Observation")


def parquet_count(parquet_dir: Path, resource_type: str) -> tuple[int, int]:
    files = str(parquet_dir / resource_type / "*.parquet")
    row = (
        duckdb.connect()
        .execute("select count(*), count(distinct id) from read_parquet(?)", [files])
        .fetchone()
    )
    assert row is not None
    return int(row[0]), int(row[1])


async def assert_collected_once(
    runtime: Runtime,
    tracker: TrackerRuntime,
    service: TrackerService,
    tracker_settings: TrackerSettings,
    fhir_server: FakeFhirServer,
    inbox: Inbox,
    connection_id: str,
    username: str,
) -> None:
    """The job went through every step once, and each sink holds the persona's record once."""
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, (job.failed_step, job.failure_description)
    assert job.export_requests == 1
    async with runtime.database.transaction() as session:
        exported = list(
            await session.scalars(
                select(ExportTask.task_id).where(ExportTask.org_connection_id == connection_id)
            )
        )
    assert exported == [job.task_id]  # one export on the platform, the one the tracker launched
    assert await job_events(tracker, job.job_id) == STEPS_DONE

    patient_id, observations = observations_of(username)
    assert observations > 0
    bundle = service.search("Observation", patient=patient_id, _count=5)
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    assert bundle["total"] == observations
    assert len(bundle["entry"]) == 5
    async with tracker.database.transaction() as session:
        versions = list(
            await session.scalars(
                select(TrackerFhirResource.version).where(
                    TrackerFhirResource.resource_type == "Observation"
                )
            )
        )
    assert len(versions) == observations
    assert set(versions) == {1}  # written once each (a rewrite of new content would be 2)

    parquet_dir = tracker_settings.parquet_dir
    assert parquet_dir is not None
    assert parquet_count(parquet_dir, "Observation") == (observations, observations)
    assert parquet_count(parquet_dir, "Patient") == (1, 1)

    total = int(job.stats["total_resources"])
    # The FHIR R4 server took every resource of the export (transactions whose references all
    # resolve), each written once.
    assert len(fhir_server.store) == total
    # In at least as many transactions as the batch size asks (more where the 16 MiB byte
    # budget of a transaction cut one short: amy's attachments weigh 30 MB).
    assert fhir_server.requests >= -(-total // tracker_settings.fhir_server.batch_size)
    observed = [r for r in fhir_server.store.values() if r["resourceType"] == "Observation"]
    assert len(observed) == observations
    assert set(fhir_server.versions.values()) == {1}
    assert inbox.recipients == [[PATIENT_EMAIL]]
    [message] = inbox.messages
    assert message["From"] == "records@acme.test"
    assert message["Subject"] == "Your records from Harbor Health (Sandbox) are ready"
    assert f"({total} items)" in message.get_payload()


# ---- the tests ---------------------------------------------------------------------------------


# 1000: the whole export in one transaction. 40: thirteen transactions, each of which only holds
# resources whose references point into it or into an earlier one (the fake server, like HAPI,
# refuses a reference it cannot resolve).
@pytest.mark.parametrize("fhir_batch_size", [1000, 40])
async def test_consent_flow_to_fhir_store_parquet_and_email(
    platform: Platform,
    runtime: Runtime,
    tracker: TrackerRuntime,
    tracker_service: TrackerService,
    tracker_settings: TrackerSettings,
    endpoint: endpoints.CreatedEndpoint,
    fhir_server: tuple[FakeFhirServer, str],
    smtp: tuple[Inbox, int],
) -> None:
    connection_id = await connect_and_hand_over(platform, tracker_service, tracker, "amy")
    job = await job_of(tracker, connection_id)

    # The platform crawls the sandbox and signs its webhooks to the tracker's /webhooks.
    await run_platform_jobs(runtime)
    success = await event_of(runtime, "patient.ehi_export_success", connection_id)
    assert success.data["task_id"] == job.task_id  # the export the tracker launched
    [link] = success.data["download_links"]
    [attempt] = await attempts_of(runtime, success.event_id)
    assert attempt.status_code == 200, (attempt.error, attempt.response_excerpt)

    # The tracker processes the webhooks, downloads, verifies, ingests and notifies.
    await drain(tracker)
    job = await job_of(tracker, connection_id)
    assert job.state == JobState.INGESTED, (job.failed_step, job.failure_description)
    assert job.downloaded_at is not None
    assert job.ingested_at is not None
    assert job.notified_at is not None

    # The file was verified against the sha256 and size the signed webhook announced, and the
    # tracker's copy is byte for byte the platform's export.
    [stored] = job.files
    assert (stored["sha256"], stored["size"]) == (link["sha256"], link["size"])
    assert tracker_settings.storage_dir is not None
    body = (tracker_settings.storage_dir / stored["key"]).read_bytes()
    assert hashlib.sha256(body).hexdigest() == link["sha256"]
    assert (
        body.count(b"\n")
        == success.data["stats"]["total_resources"]
        == job.stats["total_resources"]
    )

    received = await received_webhooks(tracker)
    assert sorted(w.event_type for w in received) == [
        "patient.connection_success",
        "patient.ehi_export_success",
    ]
    assert all(w.processed_at is not None and w.flag is None for w in received)
    # The widget hand-off, the platform's confirmation, and the connection webhook, each logged.
    assert Counter(await consent_kinds(tracker, connection_id)) == Counter(
        {"widget": 1, "confirmed": 1, "webhook": 1}
    )

    await assert_collected_once(
        runtime,
        tracker,
        tracker_service,
        tracker_settings,
        fhir_server[0],
        smtp[0],
        connection_id,
        "amy",
    )


async def test_tracker_down_at_first_delivery_the_retry_delivers_once(
    platform: Platform,
    runtime: Runtime,
    tracker: TrackerRuntime,
    tracker_service: TrackerService,
    tracker_settings: TrackerSettings,
    fhir_server: tuple[FakeFhirServer, str],
    smtp: tuple[Inbox, int],
) -> None:
    connection_id = await connect_and_hand_over(platform, tracker_service, tracker, "tina")
    connected = await event_of(runtime, "patient.connection_success", connection_id)
    # The connection's webhook goes out while the tracker is still up (so no retry of it can
    # come due during this test), then the tracker goes down.
    async with Deliverer(
        runtime.database, runtime.clock, runtime.settings.webhooks, runtime.cipher
    ) as deliverer:
        assert (await deliverer.run_until_idle()).succeeded == 1
    tracker_service.down()

    await run_platform_jobs(runtime)  # the export finishes; its webhook finds no one listening
    success = await event_of(runtime, "patient.ehi_export_success", connection_id)
    [refused] = await attempts_of(runtime, success.event_id)
    assert refused.status_code is None
    assert refused.error  # connection refused
    assert [w.webhook_id for w in await received_webhooks(tracker)] == [connected.event_id]

    # Back up before the second attempt, due 5 s (±20 %) after the first: the platform's
    # schedule is stepped with a clock 10 s ahead, not waited for.
    tracker_service.up()
    later = FrozenClock(refused.attempted_at + dt.timedelta(seconds=10))
    async with Deliverer(
        runtime.database, later, runtime.settings.webhooks, runtime.cipher
    ) as deliverer:
        report = await deliverer.run_until_idle()
    assert (report.succeeded, report.failed) == (1, 0)
    retried = (await attempts_of(runtime, success.event_id))[-1]
    assert (retried.attempt_number, retried.status_code) == (2, 200)
    await drain(tracker)

    # The platform sends the same event again (a resend, as after a lost acknowledgement): the
    # tracker acknowledges the duplicate and does nothing twice.
    resent = httpx.post(
        f"{platform.api.url}/v1/webhooks/events/{success.event_id}/resend",
        auth=platform.auth(),
        timeout=10,
    )
    assert resent.status_code == 202, resent.text
    await run_platform_jobs(runtime)
    await drain(tracker)

    attempts = await attempts_of(runtime, success.event_id)
    assert [a.status_code for a in attempts] == [None, 200, 200]
    assert '"duplicate":true' in (attempts[2].response_excerpt or "").replace(" ", "")
    received = await received_webhooks(tracker)  # stored once each, keyed by webhook-id
    assert [w.webhook_id for w in received] == [connected.event_id, success.event_id]
    assert all(w.processed_at is not None and w.flag is None for w in received)

    await assert_collected_once(
        runtime,
        tracker,
        tracker_service,
        tracker_settings,
        fhir_server[0],
        smtp[0],
        connection_id,
        "tina",
    )
