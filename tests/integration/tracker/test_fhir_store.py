"""The built-in FHIR store: upsert by type/id keeping versions, and its search."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from ehiconnect.clock import FrozenClock
from ehiconnect.tracker.ingest_step import ingest_file
from ehiconnect.tracker.models import (
    TrackerFhirResource,
    TrackerFhirVersion,
    TrackerIngestProgress,
)
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.sinks.fhir_store import FhirStoreSink, SearchQuery, history, search
from tests.integration.tracker.helpers import count
from tests.integration.tracker.records import patient_record, to_ndjson


async def test_changed_resource_gets_a_new_version_and_history(tracker: TrackerRuntime) -> None:
    clock = FrozenClock(dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC))
    sink = FhirStoreSink(tracker.database, clock)
    resources = patient_record("p1", observations=3)
    await sink.write_batch(resources, batch_key="a")
    clock.advance(60)
    await sink.write_batch(resources, batch_key="a")  # a re-run adds nothing
    assert await count(tracker, TrackerFhirVersion) == 0  # a first load keeps one row each
    amended = {**resources[-1], "status": "amended", "meta": {"lastUpdated": "2026-11-29"}}
    await sink.write_batch([amended, amended], batch_key="b")  # twice in one batch, too
    clock.advance(60)
    corrected = {**amended, "status": "corrected"}
    await sink.write_batch([corrected, resources[0]], batch_key="c")
    await sink.write_batch([corrected], batch_key="c")  # a re-run of a change adds nothing

    async with tracker.database.transaction() as session:
        row = await session.get(TrackerFhirResource, ("Observation", amended["id"]))
        unchanged = await session.get(TrackerFhirResource, ("Patient", "p1"))
        superseded = list(
            await session.execute(
                select(TrackerFhirVersion.body, TrackerFhirVersion.recorded_at)
                .where(TrackerFhirVersion.resource_id == amended["id"])
                .order_by(TrackerFhirVersion.recorded_at)
            )
        )
    assert row is not None
    assert row.version == 3
    assert row.body == corrected
    assert row.updated_at == clock.now()
    assert unchanged is not None
    assert unchanged.version == 1
    # The history keeps each content once, with the time it was stored.
    stored_at = [(body["status"], at.minute) for body, at in superseded]
    assert stored_at == [("final", 0), ("amended", 1)]
    kept = await history(tracker.database, "Observation", amended["id"])
    assert [b["status"] for b in kept] == ["final", "amended", "corrected"]
    assert kept[0] == resources[-1]
    assert await history(tracker.database, "Patient", "p1") == [resources[0]]
    assert await history(tracker.database, "Patient", "nobody") == []
    assert await count(tracker, TrackerFhirResource) == len(resources)


async def test_writers_of_the_same_resources_at_once_store_each_once(
    tracker: TrackerRuntime,
) -> None:
    """Two jobs ingesting the same resources at the same moment (a retried job still running):
    one writes them, the other finds them stored, whichever order their statements ran in."""
    resources = patient_record("p1", observations=40)
    changed = [{**r, "status": "amended"} for r in resources[4:]]
    sinks = [FhirStoreSink(tracker.database, tracker.clock) for _ in range(4)]
    await asyncio.gather(*(sink.write_batch(resources, batch_key="a") for sink in sinks))
    await asyncio.gather(*(sink.write_batch(changed, batch_key="b") for sink in sinks))

    assert await count(tracker, TrackerFhirResource) == len(resources)
    assert await count(tracker, TrackerFhirResource, TrackerFhirResource.version == 2) == 40
    assert await count(tracker, TrackerFhirVersion) == 40
    kept = await history(tracker.database, "Observation", "obs-p1-0")
    assert [b["status"] for b in kept] == ["final", "amended"]


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


async def test_nul_in_search_fields_is_stored_replaced_and_found(tracker: TrackerRuntime) -> None:
    sink = FhirStoreSink(tracker.database, tracker.clock)
    resource = {
        "resourceType": "Observation",
        "id": "o\u00001",
        "subject": {"reference": "Patient/p\u00001"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867\u00004"}]},
        "effectiveDateTime": "2025-01-02\u0000",
    }
    await sink.write_batch([resource], batch_key="a")
    await sink.write_batch([resource], batch_key="a")  # unchanged: its digest is of the export

    total, page = await search(
        tracker.database, SearchQuery("Observation", patient="p\ufffd1", code="8867\ufffd4")
    )
    assert total == 1
    assert page[0]["id"] == "o\ufffd1"
    assert page[0]["effectiveDateTime"] == "2025-01-02\ufffd"
    assert await history(tracker.database, "Observation", "o\ufffd1") == page


class _Killed(Exception):
    """The worker died."""


class _DiesInThirdCopy(FhirStoreSink):
    """Dies after sending its third batch's rows, before that batch's commit."""

    copies = 0

    async def _copy(self, driver: psycopg.AsyncConnection[Any], data: bytes) -> None:
        await super()._copy(driver, data)
        self.copies += 1
        if self.copies == 3:
            raise _Killed


async def test_a_batch_and_its_checkpoint_commit_together(tracker: TrackerRuntime) -> None:
    resources = patient_record(observations=95)  # 99 resources, batches of 10
    async with tracker.blobs.open_writer("f.ndjson") as writer:
        await writer.write(to_ndjson(resources))
    tracker.settings.ingest_batch_size = 10

    dying = _DiesInThirdCopy(tracker.database, tracker.clock)
    with pytest.raises(_Killed):
        await ingest_file(tracker, "job1", dying, 0, "f.ndjson")
    # The third batch's rows went to PostgreSQL but were never committed, nor its checkpoint.
    assert await count(tracker, TrackerFhirResource) == 20
    async with tracker.database.transaction() as session:
        saved = await session.get(TrackerIngestProgress, ("job1", "fhir_store", "f.ndjson"))
        assert saved is not None
        assert (saved.lines_done, saved.finished) == (20, False)

    sink = FhirStoreSink(tracker.database, tracker.clock)
    assert await ingest_file(tracker, "job1", sink, 0, "f.ndjson") == 99 - 20
    assert await count(tracker, TrackerFhirResource) == 99
    assert await count(tracker, TrackerFhirVersion) == 0
    async with tracker.database.transaction() as session:
        saved = await session.get(TrackerIngestProgress, ("job1", "fhir_store", "f.ndjson"))
        assert saved is not None
        assert (saved.lines_done, saved.finished) == (99, True)
    assert await ingest_file(tracker, "job1", sink, 0, "f.ndjson") == 0  # finished: nothing more


async def test_lines_that_are_not_a_resource_are_skipped_counted_and_logged(
    tracker: TrackerRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """The store parses its batches' lines itself: a line that is not JSON, or not an object, is
    skipped (logged with its batch and the count, never its content) and holds its position, so
    every resource around it is stored and a resumed ingest counts the same lines."""
    resources = patient_record(observations=5)  # 9 resources
    lines = to_ndjson(resources).splitlines()
    damaged = [*lines[:3], b'{"resourceType": "Observation", "id": "secret', *lines[3:6]]
    damaged += [b"[1, 2]", b"", *lines[6:]]
    async with tracker.blobs.open_writer("f.ndjson") as writer:
        await writer.write(b"\n".join(damaged) + b"\n")
    tracker.settings.ingest_batch_size = 4
    sink = FhirStoreSink(tracker.database, tracker.clock)

    with caplog.at_level(logging.WARNING, logger="ehiconnect.tracker"):
        assert await ingest_file(tracker, "job1", sink, 0, "f.ndjson") == 9  # resources

    assert await count(tracker, TrackerFhirResource) == 9
    skipped = [r for r in caplog.records if r.getMessage() == "malformed NDJSON lines skipped"]
    assert [(getattr(r, "batch", None), getattr(r, "count", None)) for r in skipped] == [
        ("job1-0-000000000", 1),
        ("job1-0-000000004", 1),
    ]
    assert all("secret" not in r.getMessage() for r in caplog.records)
    async with tracker.database.transaction() as session:
        saved = await session.get(TrackerIngestProgress, ("job1", "fhir_store", "f.ndjson"))
        assert saved is not None
        assert (saved.lines_done, saved.finished) == (11, True)  # non-blank lines
