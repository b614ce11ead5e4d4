"""Shared steps of tracker tests: forward a widget event, read the ledger."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker.models import TrackerConsent, TrackerJob, TrackerJobEvent
from ehiconnect.tracker.runtime import TrackerRuntime
from tests.integration.tracker.conftest import STITCH_TOKEN


def widget_complete(*connection_ids: str, external_id: str = "user-42") -> dict[str, Any]:
    return {
        "api_mode": "test",
        "event_type": "widget.complete",
        "external_id": external_id,
        "date": "2026-11-29T02:00:00Z",
        "data": [
            {
                "org_connection_id": cid,
                "connection_status": "authorized",
                "platform_type": "sandbox",
                "brand_id": "brand-harbor",
                "portal_id": "portal-1",
                "endpoint_id": "endpoint-1",
            }
            for cid in connection_ids
        ],
    }


def forward(receiver: ThreadedServer, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{receiver.url}/stitch-events",
        json=payload,
        headers={"Authorization": f"Bearer {STITCH_TOKEN}"},
        timeout=10,
    )


async def job_of(tracker: TrackerRuntime, connection_id: str) -> TrackerJob:
    async with tracker.database.transaction() as session:
        job = await session.scalar(
            select(TrackerJob).where(TrackerJob.org_connection_id == connection_id)
        )
        assert job is not None, f"no job for {connection_id}"
        return job


async def count(tracker: TrackerRuntime, model: Any, *where: Any) -> int:
    async with tracker.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def consent_kinds(tracker: TrackerRuntime, connection_id: str) -> list[str]:
    async with tracker.database.transaction() as session:
        rows = await session.scalars(
            select(TrackerConsent.kind)
            .where(TrackerConsent.org_connection_id == connection_id)
            .order_by(TrackerConsent.entry_id)
        )
        return list(rows)


async def job_events(tracker: TrackerRuntime, job_id: str) -> list[tuple[str, str]]:
    async with tracker.database.transaction() as session:
        rows = await session.execute(
            select(TrackerJobEvent.step, TrackerJobEvent.outcome)
            .where(TrackerJobEvent.job_id == job_id)
            .order_by(TrackerJobEvent.event_id)
        )
        return [(step, outcome) for step, outcome in rows]
