"""The real crawl engine on in-memory ports (`crawler.memory`): no network, no database.

One patient on a server that supports three searches: Observations over three pages (`next`
links), Conditions with a warning in the searchset, DocumentReferences with attachments. The
records refer to a practitioner (who refers to an organization), to one who cannot be read, and
to an Observation that a later search page brings anyway.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from ehiconnect.crawler.engine import CrawlContext, CrawlReport, crawl
from ehiconnect.crawler.memory import MemoryAttachment, MemoryFhirSource, MemoryStaging
from ehiconnect.crawler.ports import Checkpoint
from ehiconnect.crawler.quirks import GENERIC
from ehiconnect.errors import FatalError
from ehiconnect.vocabulary import ExportFailureReason, ExportPhase

BASE = "https://ehr.example.org/fhir/"
OBSERVATIONS = "Observation?patient=p1&_count=2"
OBSERVATIONS_2 = f"{BASE}Observation?patient=p1&_count=2&page=2"
OBSERVATIONS_3 = f"{BASE}Observation?patient=p1&_count=2&page=3"
CONDITIONS = "Condition?patient=p1&_count=2"
DOCUMENTS = "DocumentReference?patient=p1&_count=2"
STAGING_LIMIT = 16
NOTE = b"a clinical note."  # 16 bytes: staged
SCAN = b"x" * 64  # over the staging limit: left to packaging


def searchable(resource_type: str) -> dict[str, Any]:
    return {"type": resource_type, "interaction": [{"code": "read"}, {"code": "search-type"}]}


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": resource} for resource in resources],
    }


def observation(id_: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "subject": {"reference": "Patient/p1"},
        **fields,
    }


def health_system() -> MemoryFhirSource:
    capabilities = {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {"type": "Patient", "interaction": [{"code": "read"}]},
                    searchable("Observation"),
                    searchable("Condition"),
                    searchable("DocumentReference"),
                ],
            }
        ],
    }
    document = {
        "resourceType": "DocumentReference",
        "id": "doc1",
        "subject": {"reference": "Patient/p1"},
        "content": [
            {"attachment": {"contentType": "text/plain", "url": "Binary/note"}},
            {"attachment": {"contentType": "image/tiff", "url": "Binary/scan"}},
            {"attachment": {"contentType": "text/plain", "data": "aW5saW5l"}},  # nothing to fetch
        ],
    }
    return MemoryFhirSource(
        BASE,
        resources={
            "metadata": capabilities,
            "Patient/p1": {"resourceType": "Patient", "id": "p1"},
            OBSERVATIONS: bundle(
                observation("obs1", performer=[{"reference": "Practitioner/pr1"}]),
                # Referred to before its own page comes: the search brings it, no read does.
                observation("obs2", hasMember=[{"reference": "Observation/obs4"}]),
                next_url=OBSERVATIONS_2,
            ),
            OBSERVATIONS_2: bundle(
                observation("obs3", performer=[{"reference": "Practitioner/pr-gone"}]),
                next_url=OBSERVATIONS_3,
            ),
            OBSERVATIONS_3: bundle(observation("obs4")),
            CONDITIONS: bundle(
                {
                    "resourceType": "Condition",
                    "id": "cond1",
                    "subject": {"reference": "Patient/p1"},
                    "asserter": {"reference": "Practitioner/pr1"},
                    "encounter": {"reference": "Encounter/enc1"},  # searched, never read
                },
                {
                    "resourceType": "OperationOutcome",
                    "id": "warning",
                    "issue": [{"severity": "warning", "code": "informational"}],
                },
            ),
            DOCUMENTS: bundle(document),
            "Practitioner/pr1": {
                "resourceType": "Practitioner",
                "id": "pr1",
                "qualification": [{"issuer": {"reference": "Organization/org1"}}],
            },
            "Organization/org1": {"resourceType": "Organization", "id": "org1"},
        },
        attachments={
            "Binary/note": MemoryAttachment("text/plain", NOTE),
            "Binary/scan": MemoryAttachment("image/tiff", SCAN),
        },
        failures={"Practitioner/pr-gone": 500},
        chunk_size=5,
    )


EVERY_RESOURCE = {
    ("Patient", "p1"),
    ("Observation", "obs1"),
    ("Observation", "obs2"),
    ("Observation", "obs3"),
    ("Observation", "obs4"),
    ("Condition", "cond1"),
    ("DocumentReference", "doc1"),
    ("Practitioner", "pr1"),
    ("Organization", "org1"),
}


class Progress:
    """What the crawl reported, as the export task's row would sum it up."""

    def __init__(self) -> None:
        self.phases: list[ExportPhase] = []
        self.resources = 0
        self.attachment_bytes = 0
        self.reports: list[dict[str, Any]] = []

    async def __call__(
        self,
        *,
        phase: ExportPhase | None = None,
        resources_added: int = 0,
        attachment_bytes: int = 0,
        crawl_report: dict[str, Any] | None = None,
    ) -> None:
        if phase is not None:
            self.phases.append(phase)
        self.resources += resources_added
        self.attachment_bytes += attachment_bytes
        if crawl_report is not None:
            self.reports.append(crawl_report)


async def run(source: MemoryFhirSource, staging: MemoryStaging, progress: Progress) -> CrawlReport:
    return await crawl(
        CrawlContext(
            source=source,
            staging=staging,
            patient_id="p1",
            granted_scope="launch/patient patient/*.read",
            quirks=GENERIC,
            page_size=2,
            on_progress=progress,
            staging_limit=STAGING_LIMIT,
        )
    )


async def test_a_crawl_stages_each_resource_once_and_follows_pages_and_references() -> None:
    source, staging, progress = health_system(), MemoryStaging(), Progress()

    report = await run(source, staging, progress)

    assert set(staging.resources) == EVERY_RESOURCE
    assert staging.offered == Counter(EVERY_RESOURCE)  # nothing fetched or staged twice
    requested = Counter(source.requests)
    assert max(requested.values()) == 1
    # Every page of the Observation search, through its `next` links.
    assert {OBSERVATIONS_2, OBSERVATIONS_3} <= set(requested)
    # pr1, referred to twice, read once; org1 through pr1; obs4 came with its page.
    assert requested[f"{BASE}Practitioner/pr1"] == 1
    assert requested[f"{BASE}Organization/org1"] == 1
    assert f"{BASE}Observation/obs4" not in requested
    assert f"{BASE}Encounter/enc1" not in requested  # not a type hydrated by reference
    assert {step: c for step, c in staging.steps.items() if step.startswith("search:")} == {
        f"search:{url}": Checkpoint(cursor=None, done=True)
        for url in (OBSERVATIONS, CONDITIONS, DOCUMENTS)
    }

    assert progress.phases == [
        ExportPhase.DISCOVER,
        ExportPhase.PATIENT,
        ExportPhase.RESOURCES,
        ExportPhase.HYDRATE,
    ]
    assert progress.resources == len(EVERY_RESOURCE)
    assert progress.attachment_bytes == len(NOTE)
    # metadata, then the three Observation pages one after the other (or pr1 and org1 after the
    # Condition page): the Patient read went out beside metadata, and no search waits for it.
    assert report.critical_path[0] == "metadata"
    assert "Patient read" not in report.critical_path
    assert len(report.critical_path) == 4
    assert progress.reports == [
        {"critical_path_requests": 4, "crawl_seconds": report.seconds},
    ]


async def test_a_resource_that_cannot_be_read_is_one_line_of_the_error_report() -> None:
    source, staging = health_system(), MemoryStaging()

    await run(source, staging, Progress())

    [outcome] = staging.errors.values()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "exception")
    assert issue["diagnostics"].startswith("Request failed with HTTP 500")
    assert issue["details"] == {"text": f"{BASE}Practitioner/pr-gone"}
    assert issue["expression"] == ["Practitioner"]
    # Marked done: a resumed crawl does not try it again.
    assert staging.steps["read:Practitioner/pr-gone"] == Checkpoint(cursor=None, done=True)


async def test_attachments_are_staged_up_to_the_limit_and_larger_ones_left_to_packaging() -> None:
    source, staging = health_system(), MemoryStaging()

    await run(source, staging, Progress())

    note, scan = staging.attachments["note"], staging.attachments["scan"]
    assert (note.done, note.body, note.content_type) == (True, NOTE, "text/plain")
    assert note.source_url == f"{BASE}Binary/note"
    assert (scan.done, scan.body, scan.size) == (False, None, len(SCAN))
    assert scan.content_type == "image/tiff"
    assert len(staging.attachments) == 2  # the inline one has nothing to download
    assert Counter(source.requests)[f"{BASE}Binary/scan"] == 1


async def test_a_resumed_crawl_continues_from_its_checkpoints_without_fetching_twice() -> None:
    source, staging = health_system(), MemoryStaging()
    source.failures[OBSERVATIONS_2] = RuntimeError("the worker died")
    first_progress = Progress()

    with pytest.raises(RuntimeError, match="the worker died"):
        await run(source, staging, first_progress)

    assert staging.steps[f"search:{OBSERVATIONS}"] == Checkpoint(cursor=OBSERVATIONS_2, done=False)
    first = list(source.requests)
    del source.failures[OBSERVATIONS_2]
    source.requests.clear()
    second_progress = Progress()

    await run(source, staging, second_progress)

    # Only the crawl's anchors are read again, and the page the first run never got.
    assert set(first) & set(source.requests) == {
        f"{BASE}metadata",
        f"{BASE}Patient/p1",
        OBSERVATIONS_2,
    }
    assert f"{BASE}{OBSERVATIONS}" not in source.requests
    assert set(staging.resources) == EVERY_RESOURCE
    assert staging.offered == Counter(EVERY_RESOURCE) + Counter({("Patient", "p1"): 1})
    assert first_progress.resources + second_progress.resources == len(EVERY_RESOURCE)
    assert len(staging.errors) == 1
    assert {binary_id: a.done for binary_id, a in staging.attachments.items()} == {
        "note": True,
        "scan": False,
    }
    assert second_progress.phases[-1] == ExportPhase.HYDRATE


async def test_without_the_patient_there_is_nothing_to_export() -> None:
    source, staging = health_system(), MemoryStaging()
    source.failures[f"{BASE}Patient/p1"] = 404

    with pytest.raises(FatalError) as raised:
        await run(source, staging, Progress())

    assert raised.value.failure_reason == ExportFailureReason.RESOURCE_PATIENT_FAILURE
    assert staging.resources == {}
    assert source.requests == [f"{BASE}metadata", f"{BASE}Patient/p1"]


class _SlowServer(MemoryFhirSource):
    """Answers `slow` only once the crawl has asked for `first` (or after 100 loop turns)."""

    def __init__(self, slow: str, first: str) -> None:
        system = health_system()
        super().__init__(
            BASE,
            resources=system.resources,
            attachments=system.attachments,
            failures=system.failures,
            chunk_size=system.chunk_size,
        )
        self.slow, self.first = self.absolute(slow), self.absolute(first)
        self.first_asked_before: list[bool] = []

    async def get_json(self, url: str) -> dict[str, Any]:
        if self.absolute(url) == self.slow:
            for _ in range(100):
                if any(request.startswith(self.first) for request in self.requests):
                    break
                await asyncio.sleep(0)
            self.first_asked_before.append(
                any(request.startswith(self.first) for request in self.requests)
            )
        return await super().get_json(url)


async def test_the_patient_is_read_while_the_capability_statement_is_on_its_way() -> None:
    source, staging = _SlowServer(slow="metadata", first="Patient/p1"), MemoryStaging()

    await run(source, staging, Progress())

    assert source.first_asked_before == [True]
    assert set(staging.resources) == EVERY_RESOURCE


async def test_the_searches_start_while_the_patient_is_on_its_way() -> None:
    source, staging = _SlowServer(slow="Patient/p1", first=OBSERVATIONS), MemoryStaging()

    await run(source, staging, Progress())

    assert source.first_asked_before == [True]
    assert set(staging.resources) == EVERY_RESOURCE
    assert max(Counter(source.requests).values()) == 1


class _StagingThatWaits(MemoryStaging):
    """Holds the first Observation page until the crawl has asked for the next one."""

    def __init__(self, source: MemoryFhirSource) -> None:
        super().__init__()
        self.source = source
        self.asked_ahead: list[bool] = []

    async def stage_page(
        self, step: str, resources: Sequence[dict[str, Any]], *, next_url: str | None
    ) -> int:
        if next_url == OBSERVATIONS_2:
            for _ in range(100):
                if OBSERVATIONS_2 in self.source.requests:
                    break
                await asyncio.sleep(0)
            self.asked_ahead.append(OBSERVATIONS_2 in self.source.requests)
        return await super().stage_page(step, resources, next_url=next_url)


async def test_the_next_page_is_asked_for_while_the_page_before_it_is_staged() -> None:
    source = health_system()
    staging = _StagingThatWaits(source)

    await run(source, staging, Progress())

    assert staging.asked_ahead == [True]
    assert set(staging.resources) == EVERY_RESOURCE
    assert max(Counter(source.requests).values()) == 1


class _StagingThatWaitsForPage2(MemoryStaging):
    """Holds the first Observation page until a read that the second page names was sent."""

    def __init__(self, source: MemoryFhirSource) -> None:
        super().__init__()
        self.source = source
        self.page_2_looked_at: list[bool] = []

    async def stage_page(
        self, step: str, resources: Sequence[dict[str, Any]], *, next_url: str | None
    ) -> int:
        if next_url == OBSERVATIONS_2:
            named = f"{BASE}Practitioner/pr-gone"  # obs3's performer, on page 2
            for _ in range(100):
                if named in self.source.requests:
                    break
                await asyncio.sleep(0)
            self.page_2_looked_at.append(named in self.source.requests)
        return await super().stage_page(step, resources, next_url=next_url)


async def test_a_page_is_written_while_the_next_one_is_looked_at() -> None:
    source = health_system()
    staging = _StagingThatWaitsForPage2(source)

    await run(source, staging, Progress())

    assert staging.page_2_looked_at == [True]
    assert set(staging.resources) == EVERY_RESOURCE
    assert staging.steps[f"search:{OBSERVATIONS}"] == Checkpoint(cursor=None, done=True)


class _StagingThatFails(MemoryStaging):
    async def stage_page(
        self, step: str, resources: Sequence[dict[str, Any]], *, next_url: str | None
    ) -> int:
        if next_url == OBSERVATIONS_3:
            raise RuntimeError("the database went away")
        return await super().stage_page(step, resources, next_url=next_url)


async def test_pages_are_staged_in_order_when_staging_one_fails() -> None:
    source, staging = health_system(), _StagingThatFails()

    with pytest.raises(RuntimeError, match="the database went away"):
        await run(source, staging, Progress())

    # Page 2 was not staged, so neither is page 3, asked for ahead: a resumed crawl reads page 2.
    assert staging.steps[f"search:{OBSERVATIONS}"] == Checkpoint(cursor=OBSERVATIONS_2, done=False)
    assert ("Observation", "obs3") not in staging.resources
    assert ("Observation", "obs4") not in staging.resources


class _HeldBytes:
    """Bytes of attachments downloads hold between their first chunk and being staged."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def add(self, size: int) -> None:
        self.now += size
        self.peak = max(self.peak, self.now)


class _CountingSource(MemoryFhirSource):
    def __init__(self, held: _HeldBytes, **kwargs: Any) -> None:
        super().__init__(BASE, **kwargs)
        self.held = held

    async def download(self, url: str, sink: Any) -> Any:
        held = self.held

        class Counted:
            async def begin(self, content_type: str, declared_size: int | None) -> None:
                await sink.begin(content_type, declared_size)
                held.add(declared_size or 0)

            async def write(self, chunk: bytes) -> None:
                await sink.write(chunk)

            async def restart(self) -> None:
                await sink.restart()

        return await super().download(url, Counted())


class _SlowAttachmentStaging(MemoryStaging):
    def __init__(self, held: _HeldBytes) -> None:
        super().__init__()
        self.held = held

    async def stage_attachment(
        self, binary_id: str, *, source_url: str, content_type: str, chunks: Sequence[bytes]
    ) -> int:
        for _ in range(3):
            await asyncio.sleep(0)  # a blob and a row take a while
        size = await super().stage_attachment(
            binary_id, source_url=source_url, content_type=content_type, chunks=chunks
        )
        self.held.add(-size)
        return size


async def test_downloads_in_flight_hold_no_more_than_the_memory_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ehiconnect.crawler import engine

    monkeypatch.setattr(engine, "STAGING_BUDGET", 2 * STAGING_LIMIT)
    held = _HeldBytes()
    notes = {f"Binary/n{n}": MemoryAttachment("text/plain", NOTE) for n in range(10)}
    document = {
        "resourceType": "DocumentReference",
        "id": "doc1",
        "content": [{"attachment": {"url": url}} for url in notes],
    }
    capabilities = health_system().resources[f"{BASE}metadata"]
    source = _CountingSource(
        held,
        resources={
            "metadata": capabilities,
            "Patient/p1": {"resourceType": "Patient", "id": "p1"},
            OBSERVATIONS: bundle(),
            CONDITIONS: bundle(),
            DOCUMENTS: bundle(document),
        },
        attachments=notes,
    )
    staging = _SlowAttachmentStaging(held)

    await run(source, staging, Progress())

    assert {a.body for a in staging.attachments.values()} == {NOTE}
    assert len(staging.attachments) == 10
    assert held.peak == 2 * len(NOTE)  # two at a time, as the budget allows
