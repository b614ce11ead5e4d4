"""The widget hand-off and the connection webhook arriving together start one job."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from ehiconnect.tracker.consent_log import ConsentArtifact
from ehiconnect.tracker.export_steps import consent_received
from ehiconnect.tracker.models import TrackerJob
from ehiconnect.tracker.runtime import TrackerRuntime


async def test_simultaneous_consents_for_one_connection_make_one_job(
    tracker: TrackerRuntime,
) -> None:
    artifact = ConsentArtifact(org_connection_id="conn-race", brand_id="brand-harbor")
    both_inside = asyncio.Barrier(2)

    async def receive(kind: str) -> None:
        async with tracker.database.transaction() as session:
            await session.execute(select(1))
            await both_inside.wait()  # two transactions open at once, as two requests would be
            await consent_received(session, tracker, artifact, kind, tracker.clock.now())

    await asyncio.gather(receive("widget"), receive("webhook"))

    async with tracker.database.transaction() as session:
        jobs = list(
            await session.scalars(
                select(TrackerJob).where(TrackerJob.org_connection_id == "conn-race")
            )
        )
    assert len(jobs) == 1
