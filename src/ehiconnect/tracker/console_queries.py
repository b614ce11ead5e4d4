"""What the tracker's console shows, read from the ledger, the consent log and the job events.

Every list is one page of `PAGE_SIZE` rows (one more is read to know whether a next page
exists; no count over the table). Jobs by state and failures by reason, health system and step
come from `report`, the same code `ehiconnect tracker status|failures` prints.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.tracker.ledger import JobState, Step
from ehiconnect.tracker.models import TrackerConsent, TrackerJob, TrackerJobEvent

_Ts = TypeVarTuple("_Ts")
PAGE_SIZE = 50
MAX_PAGE = 10_000
MAX_EVENTS = 500
STATES = tuple(state.value for state in JobState)
CONSENT_KINDS = ("widget", "webhook", "confirmed", "revoked")


@dataclass(frozen=True)
class Stage:
    """One step of a job's way from consent to notification, and when it was reached."""

    name: str
    at: dt.datetime | None


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    number: int
    has_next: bool


def stages(job: TrackerJob) -> list[Stage]:
    """consent → export → download → ingest → notify, each with the time the job reached it."""
    return [
        Stage("consent", job.created_at),
        Stage("export requested", job.export_requested_at),
        Stage("export ready", job.webhook_at),
        Stage("downloaded", job.downloaded_at),
        Stage("ingested", job.ingested_at),
        Stage("notified", job.notified_at),
    ]


def page_number(value: int) -> int:
    return min(max(value, 1), MAX_PAGE)


async def _page(session: AsyncSession, query: Select[*_Ts], number: int) -> Page:
    number = page_number(number)
    found = list(
        (await session.execute(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))).all()
    )
    return Page(rows=found[:PAGE_SIZE], number=number, has_next=len(found) > PAGE_SIZE)


async def job_ledger(
    session: AsyncSession,
    *,
    state: str | None,
    external_id: str | None,
    connection: str | None,
    page: int,
) -> Page:
    """Jobs, most recently changed first: one row per job (a job follows one consent)."""
    query = select(TrackerJob).order_by(TrackerJob.updated_at.desc(), TrackerJob.job_id)
    if state:
        query = query.where(TrackerJob.state == state)
    if external_id:
        query = query.where(TrackerJob.external_id == external_id)
    if connection:
        query = query.where(TrackerJob.org_connection_id == connection)
    found = await _page(session, query, page)
    return Page([row[0] for row in found.rows], found.number, found.has_next)


async def job_detail(session: AsyncSession, job_id: str) -> dict[str, Any] | None:
    """A job, its stages, its event log and the consent log of its connection."""
    job = await session.get(TrackerJob, job_id)
    if job is None:
        return None
    events = list(
        await session.scalars(
            select(TrackerJobEvent)
            .where(TrackerJobEvent.job_id == job_id)
            .order_by(TrackerJobEvent.event_id)
            .limit(MAX_EVENTS)
        )
    )
    consents = list(
        await session.scalars(
            select(TrackerConsent)
            .where(TrackerConsent.org_connection_id == job.org_connection_id)
            .order_by(TrackerConsent.entry_id)
            .limit(MAX_EVENTS)
        )
    )
    return {"job": job, "stages": stages(job), "events": events, "consents": consents}


async def consent_log(
    session: AsyncSession,
    *,
    kind: str | None,
    external_id: str | None,
    connection: str | None,
    page: int,
) -> Page:
    """Consent log entries, newest first (the log is append-only: nothing here changes)."""
    query = select(TrackerConsent).order_by(TrackerConsent.entry_id.desc())
    if kind:
        query = query.where(TrackerConsent.kind == kind)
    if external_id:
        query = query.where(TrackerConsent.external_id == external_id)
    if connection:
        query = query.where(TrackerConsent.org_connection_id == connection)
    found = await _page(session, query, page)
    return Page([row[0] for row in found.rows], found.number, found.has_next)


async def notifications(session: AsyncSession, *, page: int) -> Page:
    """Notification attempts (sent, or an error before a retry), newest first, with their job."""
    query = (
        select(TrackerJobEvent, TrackerJob)
        .join(TrackerJob, TrackerJob.job_id == TrackerJobEvent.job_id)
        .where(TrackerJobEvent.step == Step.NOTIFY)
        .order_by(TrackerJobEvent.event_id.desc())
    )
    found = await _page(session, query, page)
    return Page([(event, job) for event, job in found.rows], found.number, found.has_next)
