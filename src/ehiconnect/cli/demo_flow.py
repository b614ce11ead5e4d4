"""The demo's story: a patient consents, then the tracker collects the record, end to end.

The patient's side goes through the platform's real consent flow over HTTP: `GET /bridge/connect`
(as the widget would), the sandbox portal's sign-in and consent forms (filled by
`PatientBrowser`, no browser needed), and the platform's callback, which returns to the app's
redirect URI with the `org_connection_id`. From there nothing is driven by the demo: the platform
sends `patient.connection_success` to the tracker, which confirms, requests the export, gets the
signed `patient.ehi_export_success` webhook, downloads and ingests. The demo only watches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
from sqlalchemy import func, select

from ehiconnect.cli.demo_logic import (
    DEMO_REDIRECT_URI,
    Connected,
    DemoFailed,
    activity,
    furthest,
    milestones_passed,
    parse_return,
)
from ehiconnect.cli.demo_services import DemoServices
from ehiconnect.db.models import OrgConnection
from ehiconnect.exports.models import ExportTask
from ehiconnect.sandbox import (
    HealthSystem,
    PatientBrowser,
    Persona,
    PortalError,
    stable_catalog_id,
)
from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerIngestProgress, TrackerJob

POLL_SECONDS = 0.25
NOTIFY_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Collected:
    """What the tracker ended with, for the summary."""

    connection: Connected
    patient_id: str
    job_id: str
    task_id: str
    stats: dict[str, Any]
    file_size: int
    file_sha256: str
    file_location: str
    parquet_dir: str
    observations_in_store: int
    observations_url: str
    urls: dict[str, str]
    stage_seconds: dict[str, float | None]
    """export, download, ingest, notify: from the tracker's ledger times."""
    ingested: dict[str, int]
    """Resources written per sink (fhir_store, parquet, fhir_server)."""


async def connect_patient(
    services: DemoServices, public_id: str, system: HealthSystem, persona: Persona
) -> Connected:
    """The patient signs in at the sandbox portal and consents; the app gets the connection."""
    params = {
        "public_id": public_id,
        "endpoint_id": stable_catalog_id(system, "endpoint"),
        "redirect_uri": DEMO_REDIRECT_URI,
        "external_id": f"demo-{persona.username}",
    }
    try:
        return await asyncio.to_thread(_connect, services.urls["api"], params, persona)
    except httpx.TransportError as exc:
        url = exc.request.url
        raise DemoFailed(
            f"the patient's browser could not reach {url.scheme}://{url.host}:{url.port} "
            f"({type(exc).__name__})",
            "check api.public_base_url and sandbox.base_url: both must be reachable from here",
        ) from None


def _connect(api_url: str, params: dict[str, str], persona: Persona) -> Connected:
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        started = client.get(f"{api_url}/v1/bridge/connect", params=params)
        if not started.is_redirect:
            raise DemoFailed(f"GET /v1/bridge/connect answered HTTP {started.status_code}")
        location = urljoin(str(started.url), started.headers["location"])
        if location.startswith(DEMO_REDIRECT_URI):  # refused before the portal: says why
            return parse_return(location)
        try:
            back = PatientBrowser(client).authorize(location, persona.username, persona.password)
        except PortalError as exc:
            what = str(exc).partition(" (HTTP ")[0]  # the URL would carry the OAuth state
            raise DemoFailed(
                f"the sandbox portal: {what} (HTTP {exc.response.status_code})",
                "run again with --verbose to see the logs",
            ) from None
        callback = client.get(urljoin(location, back))
        if not callback.is_redirect:
            raise DemoFailed(
                f"the platform's consent callback answered HTTP {callback.status_code}",
                "run again with --verbose to see the logs",
            )
        return parse_return(urljoin(str(callback.url), callback.headers["location"]))


async def follow(
    services: DemoServices,
    connection_id: str,
    give_up_after: float,
    on_milestone: Callable[[JobState, TrackerJob], None],
    on_activity: Callable[[str], None],
) -> TrackerJob:
    """Watch the tracker's job for the connection until it is ingested (or fails, or time's up)."""
    deadline = time.monotonic() + give_up_after
    reached: JobState | None = None
    while True:
        services.check_workers()
        job = await _job_of(services, connection_id)
        state = JobState(job.state) if job else None
        if job is not None and state is not None:
            for milestone in milestones_passed(reached, state):
                on_milestone(milestone, job)
            reached = furthest(reached, state)
            if state == JobState.INGESTED:
                return job
            if state == JobState.FAILED:
                raise DemoFailed(
                    f"the tracker's job failed at step {job.failed_step}: "
                    f"{job.failure_reason}: {job.failure_description}",
                    "`ehiconnect tracker failures` lists failed jobs; --verbose shows the logs",
                    exit_code=2,
                )
        export = await _export_of(services, job.task_id if job else None)
        now = activity(state, export.phase if export else None, export.progress if export else {})
        on_activity(now)
        if time.monotonic() > deadline:
            raise DemoFailed(
                f"gave up after {give_up_after:g} s; last seen: {now}",
                "a larger --timeout, or `ehiconnect tracker status` to see where the job stands",
            )
        await asyncio.sleep(POLL_SECONDS)


async def collect(services: DemoServices, connected: Connected, job: TrackerJob) -> Collected:
    """The ingested job's facts, and the tracker's FHIR store asked over HTTP as a user would."""
    job = await _wait_notified(services, job)
    async with services.runtime.database.transaction() as session:
        connection = await session.get(OrgConnection, connected.org_connection_id)
    patient_id = (connection.source_patient_id if connection else None) or ""
    file = job.files[0]  # an export is one NDJSON file (DESIGN §4)
    key = str(file["key"])
    blobs = services.tracker.blobs
    location = str(blobs.path_for(key)) if isinstance(blobs, LocalBlobStore) else key
    url = f"{services.urls['tracker']}/fhir/Observation?patient={patient_id}&_count=5"
    token = services.tracker.settings.fhir_api_token.get_secret_value()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise DemoFailed(f"the tracker's FHIR search answered HTTP {response.status_code}")
    return Collected(
        connection=connected,
        patient_id=patient_id,
        job_id=job.job_id,
        task_id=job.task_id or "",
        stats=dict(job.stats),
        file_size=int(file["size"]),
        file_sha256=str(file["sha256"]),
        file_location=location,
        parquet_dir=str(services.tracker.parquet_dir.resolve()),
        observations_in_store=int(response.json().get("total", 0)),
        observations_url=url,
        urls=dict(services.urls),
        stage_seconds=stage_seconds(job),
        ingested=await _ingested(services, job.job_id),
    )


def stage_seconds(job: TrackerJob) -> dict[str, float | None]:
    """How long each of the tracker's stages took, from the ledger's times (None: not reached)."""
    marks = [
        ("export", job.export_requested_at, job.webhook_at),
        ("download", job.webhook_at, job.downloaded_at),
        ("ingest", job.downloaded_at, job.ingested_at),
        ("notify", job.ingested_at, job.notified_at),
    ]
    return {
        name: round((end - start).total_seconds(), 3) if start and end else None
        for name, start, end in marks
    }


async def _ingested(services: DemoServices, job_id: str) -> dict[str, int]:
    async with services.tracker.database.transaction() as session:
        rows = await session.execute(
            select(TrackerIngestProgress.sink, func.sum(TrackerIngestProgress.lines_done))
            .where(TrackerIngestProgress.job_id == job_id)
            .group_by(TrackerIngestProgress.sink)
        )
        return {str(sink): int(n or 0) for sink, n in rows}


async def _wait_notified(services: DemoServices, job: TrackerJob) -> TrackerJob:
    """Give the job's last step (notify) a moment, so stopping does not cut it short."""
    deadline = time.monotonic() + NOTIFY_WAIT_SECONDS
    while job.notified_at is None and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        job = await _job_of(services, job.org_connection_id) or job
    return job


async def _job_of(services: DemoServices, connection_id: str) -> TrackerJob | None:
    async with services.tracker.database.transaction() as session:
        job: TrackerJob | None = await session.scalar(
            select(TrackerJob)
            .where(TrackerJob.org_connection_id == connection_id)
            .order_by(TrackerJob.created_at.desc())
            .limit(1)
        )
        return job


async def _export_of(services: DemoServices, task_id: str | None) -> ExportTask | None:
    if not task_id:
        return None
    async with services.runtime.database.transaction() as session:
        return await session.get(ExportTask, task_id)
