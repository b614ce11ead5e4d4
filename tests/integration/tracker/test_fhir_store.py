"""The built-in FHIR store: upsert by type/id keeping versions, and its search."""

from __future__ import annotations

from sqlalchemy import select

from ehiconnect.tracker.models import TrackerFhirResource, TrackerFhirVersion
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.sinks.fhir_store import FhirStoreSink, SearchQuery, search
from tests.integration.tracker.helpers import count
from tests.integration.tracker.records import patient_record


async def test_changed_resource_gets_a_new_version_and_history(tracker: TrackerRuntime) -> None:
    sink = FhirStoreSink(tracker.database, tracker.clock)
    resources = patient_record("p1", observations=3)
    await sink.write_batch(resources, batch_key="a")
    await sink.write_batch(resources, batch_key="a")  # a re-run adds nothing
    amended = {**resources[-1], "status": "amended", "meta": {"lastUpdated": "2026-11-29"}}
    await sink.write_batch([amended, amended], batch_key="b")  # twice in one batch, too

    async with tracker.database.transaction() as session:
        row = await session.get(TrackerFhirResource, ("Observation", amended["id"]))
        unchanged = await session.get(TrackerFhirResource, ("Patient", "p1"))
        history = list(
            await session.scalars(
                select(TrackerFhirVersion.body).where(
                    TrackerFhirVersion.resource_id == amended["id"]
                )
            )
        )
    assert row is not None
    assert row.version == 2
    assert row.body["status"] == "amended"
    assert unchanged is not None
    assert unchanged.version == 1
    assert sorted(b["status"] for b in history) == ["amended", "final"]
    assert await count(tracker, TrackerFhirResource) == len(resources)


async def test_search_by_patient_code_and_date(tracker: TrackerRuntime) -> None:
    sink = FhirStoreSink(tracker.database, tracker.clock)
    await sink.write_batch(patient_record("p1", observations=24), batch_key="p1")
    await sink.write_batch(patient_record("p2", observations=6), batch_key="p2")

    total, page = await search(tracker.database, SearchQuery("Observation", patient="p1", count=10))
    assert total == 24
    assert len(page) == 10
    assert {r["subject"]["reference"] for r in page} == {"Patient/p1"}
    dates = [r["effectiveDateTime"] for r in page]
    assert dates == sorted(dates)

    total, _ = await search(
        tracker.database,
        SearchQuery(
            "Observation", patient="p1", code="8867-4", date_ge="2025-07", date_le="2025-12"
        ),
    )
    assert total == 6  # odd-numbered observations in July to December
    total, _ = await search(tracker.database, SearchQuery("Observation"))
    assert total == 30
