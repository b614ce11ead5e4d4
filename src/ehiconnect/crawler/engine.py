"""Crawl one patient's record into an export's staging area.

Phases, each resumable because every unit of work is checkpointed in the staging area:

1. discover — the CapabilityStatement (what the server supports, `$everything`).
2. patient — `Patient/{id}`; without it there is nothing to export (`resource_patient_failure`).
3. resources — `Patient/$everything` where advertised and trusted, else one paged search per
   patient-compartment type the granted scopes allow (vendor quirks decide fan-outs); each page is
   staged together with the link to the next one, so a resumed crawl continues at that page.
4. hydrate — resources referenced but not collected (practitioners, organizations, locations,
   medications, observations), then every attachment, each staged on its own.

A page or resource that cannot be had after retries becomes an OperationOutcome in the error
report; it never aborts the export. Token trouble (refresh refused) and the deadline do. So does a
URL the session's SSRF guard refuses (an attachment or `next` link pointing inside our network): it
is listed with the reason (code `security`), and nothing is sent to it.

The engine reaches the world only through the ports of `crawler.ports`: the health system
(`FhirSource`), the export's staging area (`CrawlStaging`) and its progress (`CrawlProgress`),
so it runs the same on in-memory ports in unit tests as on HTTP and PostgreSQL in a worker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from ehiconnect.crawler.plan import CrawlPlan, patient_read_url, plan_crawl
from ehiconnect.crawler.ports import (
    Checkpoint,
    CrawlProgress,
    CrawlStaging,
    FetchError,
    FhirSource,
    TooLarge,
)
from ehiconnect.crawler.quirks import VendorQuirks
from ehiconnect.errors import FatalError
from ehiconnect.fhir.binary import binary_id_for_attachment
from ehiconnect.fhir.capability import CapabilityError, parse_capability_statement
from ehiconnect.fhir.references import resolve_attachment_url, scan_resource
from ehiconnect.vocabulary import ExportFailureReason, ExportPhase

log = logging.getLogger(__name__)
_T = TypeVar("_T")

HYDRATION_DEPTH = 3
"""References are followed at most this many links away from a searched resource."""

STAGING_LIMIT = 4 << 20
"""Attachments up to this many bytes are staged as soon as they are found (held in memory while
they download, so at most this times the request limit); a larger one is recorded and downloaded
once, by packaging, straight into the export file (`exports.package`)."""

STAGING_BUDGET = 6 * STAGING_LIMIT
"""Bytes of small attachments held in memory at once by the downloads in flight, whatever the
request limit (each reserves its declared length, or `STAGING_LIMIT`, before its body is read):
the worker's memory stays flat when a health system allows many requests at once."""


@dataclass
class CrawlContext:
    """One patient's crawl: its ports (`crawler.ports`) and what to collect."""

    source: FhirSource
    staging: CrawlStaging
    patient_id: str
    granted_scope: str
    quirks: VendorQuirks
    page_size: int | None
    on_progress: CrawlProgress
    staging_limit: int | None = None  # STAGING_LIMIT when None


@dataclass(frozen=True)
class CrawlReport:
    """The longest chain of requests that each had to wait for the one before (the crawl's
    critical path as scheduled): its length and what each link was (types only, no ids)."""

    critical_path: tuple[str, ...]
    seconds: float  # from the first request to the last, in this run


async def crawl(ctx: CrawlContext) -> CrawlReport:
    """Collect the patient's record into `ctx.staging`, continuing from its checkpoints.

    Raises `FatalError` when there is nothing worth exporting (no CapabilityStatement, no
    Patient); whatever `ctx.source` or `ctx.on_progress` raise besides `FetchError` ends the
    crawl too, with the work in flight cancelled and everything staged kept for a resumed run.

    Nothing waits for what it does not need: the Patient read (its URL is known beforehand) and
    the checkpoints go out with the CapabilityStatement, the searches start as soon as it is
    read, while the Patient is still on its way, and progress is written beside the work.
    """
    started = time.monotonic()
    patient_url = patient_read_url(ctx.patient_id, ctx.granted_scope)
    crawler = _Crawler(ctx)
    try:
        crawler.spawn(ctx.on_progress(phase=ExportPhase.DISCOVER))
        metadata = crawler.ahead(ctx.source.get_json("metadata"))
        patient = crawler.ahead(ctx.source.get_json(patient_url))
        resume = crawler.ahead(_resume_point(ctx.staging))
        try:
            capabilities = parse_capability_statement(await metadata)
        except (FetchError, CapabilityError) as exc:
            raise FatalError(
                f"the health system's CapabilityStatement could not be read ({exc})",
                failure_reason=ExportFailureReason.RESOURCE_INVALID_CONTENT,
            ) from None
        crawler.plan = plan_crawl(
            capabilities,
            ctx.granted_scope,
            ctx.quirks,
            patient_id=ctx.patient_id,
            page_size=ctx.page_size,
        )
        crawler.steps, crawler.attachments = await resume
        if patient.done():  # a Patient read that already failed starts no search
            await _patient_or_fail(patient)
        crawler.spawn(ctx.on_progress(phase=ExportPhase.PATIENT))
        crawler.spawn(crawler.stage_patient(patient))
        # Work is started as it is discovered: every search at once, then each reference and
        # attachment as soon as a page or read names it (the session's limit bounds them all).
        crawler.spawn(ctx.on_progress(phase=ExportPhase.RESOURCES))
        crawler.start_searches()
        await crawler.rescan()
        await crawler.wait(lambda: crawler.searches_left == 0)
        crawler.spawn(ctx.on_progress(phase=ExportPhase.HYDRATE))
        crawler.release_deferred()
        await crawler.wait(lambda: not crawler.tasks)
    finally:
        await crawler.cancel()
    report = CrawlReport(crawler.longest, round(time.monotonic() - started, 3))
    await ctx.on_progress(
        crawl_report={
            "critical_path_requests": len(report.critical_path),
            "crawl_seconds": report.seconds,
        }
    )
    return report


_SEARCH_CHAIN = ("metadata",)
_PATIENT_CHAIN = ("Patient read",)


async def _resume_point(staging: CrawlStaging) -> tuple[dict[str, Checkpoint], dict[str, bool]]:
    """What an earlier run checkpointed: its steps, and the attachments it recorded."""
    return await staging.checkpoints(), await staging.recorded_attachments()


async def _patient_or_fail(read: asyncio.Task[dict[str, Any]]) -> dict[str, Any]:
    try:
        patient = await read
    except FetchError as exc:
        raise FatalError(
            f"the patient's own record could not be read ({exc.detail})",
            failure_reason=ExportFailureReason.RESOURCE_PATIENT_FAILURE,
        ) from None
    if patient.get("resourceType") != "Patient":
        raise FatalError(
            "the health system answered the patient read with something else",
            failure_reason=ExportFailureReason.RESOURCE_INVALID_CONTENT,
        )
    return patient


Chain = tuple[str, ...]


class _Crawler:
    """The crawl's work graph: each unit (a search, a read, a download) runs as its own task and
    starts the units it discovers. The first unexpected error cancels the rest and is raised."""

    plan: CrawlPlan  # once the CapabilityStatement is read
    steps: dict[str, Checkpoint]  # checkpoints of an earlier run, read beside it
    attachments: dict[str, bool]  # recorded by this or an earlier run: binary id → staged

    def __init__(self, ctx: CrawlContext) -> None:
        self.ctx = ctx
        self.base = ctx.source.base_url
        self.staged: set[tuple[str, str]] = set()
        self.wanted: set[tuple[str, str]] = set()  # reads started or waiting for the searches
        self.deferred: dict[tuple[str, str], tuple[int, Chain]] = {}
        self.downloads: set[str] = set()
        self.searches_left = 0
        self.searching = True
        self.rescanning = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._ahead: list[asyncio.Task[Any]] = []
        self.longest: Chain = ()
        self._failure: BaseException | None = None
        self._changed = asyncio.Event()
        self.memory = _MemoryBudget(STAGING_BUDGET)

    # ------------------------------------------------------------------ scheduling

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def ahead(self, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Start `work` now, for a result awaited later (cancelled with the crawl)."""
        task = asyncio.create_task(work)
        self._ahead.append(task)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            error = task.exception()
            if error is not None and self._failure is None:
                self._failure = error
        self._changed.set()

    async def wait(self, until: Callable[[], bool]) -> None:
        while self._failure is None and not until():
            self._changed.clear()
            await self._changed.wait()
        if self._failure is not None:
            await self.cancel()
            raise self._failure

    async def cancel(self) -> None:
        pending = [*self.tasks, *self._ahead]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def note(self, chain: Chain) -> None:
        if len(chain) > len(self.longest):
            self.longest = chain

    # ------------------------------------------------------------------ discovery

    async def rescan(self) -> None:
        """A resumed crawl: what an earlier run staged, each resource parsed once.

        The reads it refers to are held until the scan is over: a resource staged further on in
        the scan (a Practitioner after the Condition naming it) is not read again."""
        self.rescanning = True
        async for resource in self.ctx.staging.staged_resources():
            self.staged.add((resource["resourceType"], str(resource["id"])))
            self.found(resource, 0, _SEARCH_CHAIN)
        self.rescanning = False
        held, self.deferred = self.deferred, {}
        for key, (depth, chain) in sorted(held.items()):
            if key not in self.staged:
                self.want(key, depth, chain)

    def found(self, resource: dict[str, Any], depth: int, chain: Chain) -> None:
        """Start what `resource` refers to that nobody has fetched or started yet."""
        references, attachments = scan_resource(
            resource, self.base, references=depth < HYDRATION_DEPTH
        )
        for reference in references:
            if not (
                reference.is_fetchable
                and reference.resource_type in self.plan.hydrate_types
                and reference.resource_id
            ):
                continue
            key = (reference.resource_type, reference.resource_id)
            if key in self.staged or key in self.wanted:
                continue
            if f"read:{key[0]}/{key[1]}" in self.steps:  # failed in an earlier run
                continue
            self.wanted.add(key)
            self.want(key, depth + 1, chain)
        for attachment in attachments:
            if attachment.has_inline_data or not attachment.url:
                continue
            source = resolve_attachment_url(attachment.url, self.base)
            if source is None:
                continue
            binary_id = binary_id_for_attachment(source.url, self.base)
            if binary_id in self.downloads or binary_id in self.attachments:
                continue
            self.downloads.add(binary_id)
            step = self.steps.get(f"attachment:{binary_id}")
            if step is not None and step.done:  # failed in an earlier run
                continue
            self.spawn(self._download(binary_id, source.url, attachment.content_type, chain))

    def want(self, key: tuple[str, str], depth: int, chain: Chain) -> None:
        """Read `key` now, or once it is known that nothing else brings it."""
        if self.rescanning or (
            self.searching and (self.plan.uses_everything or key[0] in self.plan.searched_types)
        ):
            # A search (or the rest of the staging area) may still bring it: read it only if
            # none did.
            self.deferred[key] = (depth, chain)
        else:
            self.spawn(self._read(key, depth, chain))

    def start_searches(self) -> None:
        targets: list[tuple[str, str, str | None, str]]
        if self.plan.everything_url:
            targets = [("everything", self.plan.everything_url, None, "$everything")]
        else:
            targets = [
                (f"search:{s.url}", s.url, s.resource_type, f"{s.resource_type} search")
                for s in self.plan.searches
            ]
        self.searches_left = len(targets)
        for step, url, resource_type, label in targets:
            self.spawn(self._search(step, url, resource_type, label))

    def release_deferred(self) -> None:
        """The searches are over: read what they were expected to bring but did not."""
        self.searching = False
        deferred, self.deferred = self.deferred, {}
        for key, (depth, chain) in sorted(deferred.items()):
            if key not in self.staged:
                self.spawn(self._read(key, depth, chain))

    # ------------------------------------------------------------------ units of work

    async def stage_patient(self, read: asyncio.Task[dict[str, Any]]) -> None:
        patient = await _patient_or_fail(read)
        self.note(_PATIENT_CHAIN)
        self.staged.add(("Patient", str(patient.get("id"))))
        self.found(patient, 0, _PATIENT_CHAIN)
        added = await self.ctx.staging.stage_resources([patient])
        await self.ctx.on_progress(resources_added=added)

    async def _search(
        self, step: str, first_url: str, resource_type: str | None, label: str
    ) -> None:
        try:
            await self._pages(step, first_url, resource_type, label)
        finally:
            self.searches_left -= 1

    async def _pages(
        self, step: str, first_url: str, resource_type: str | None, label: str
    ) -> None:
        """A search's pages in order. The next page is asked for as soon as its link is known,
        and what a page names is started before its rows are written; a page is staged while
        the next one is fetched and looked at: nothing on the chain waits for the database.
        Pages are still staged one after the other (a page's write starts once the one before
        is committed), each with the link to the next, so a resumed crawl continues where this
        one stopped."""
        ctx = self.ctx
        saved = self.steps.get(step)
        if saved is not None and saved.done:
            return
        url: str | None = saved.cursor if saved is not None and saved.cursor else first_url
        chain: Chain = _SEARCH_CHAIN
        fetching: asyncio.Task[dict[str, Any]] | None = None
        staging: asyncio.Task[None] | None = None  # the page before, being written
        try:
            while url is not None:
                if fetching is None:
                    fetching = asyncio.create_task(ctx.source.get_json(url))
                try:
                    bundle = await fetching
                except FetchError as exc:
                    if staging is not None:  # its checkpoint before this failure's
                        await staging
                        staging = None
                    await _give_up(ctx, step, exc, resource_type)
                    return
                chain = (*chain, label)
                self.note(chain)
                data = _page_resources(bundle)
                following = _next_link(bundle)
                fetching = None
                if following is not None:
                    fetching = asyncio.create_task(ctx.source.get_json(following))
                    await asyncio.sleep(0)  # sent before this page's resources are looked at
                for resource in data:
                    if resource.get("resourceType") and resource.get("id"):
                        self.staged.add((resource["resourceType"], str(resource["id"])))
                for resource in data:
                    self.found(resource, 0, chain)
                if staging is not None:
                    await staging
                staging = asyncio.create_task(self._stage_page(step, data, following))
                url = following
            if staging is not None:
                await staging
                staging = None
        except Exception:
            if staging is not None:  # the page before is kept: its write ends before the search
                await asyncio.gather(staging, return_exceptions=True)
                staging = None
            raise
        finally:
            for ahead in (fetching, staging):  # a page this search no longer takes or writes
                if ahead is not None:
                    ahead.cancel()
                    await asyncio.gather(ahead, return_exceptions=True)

    async def _stage_page(
        self, step: str, data: list[dict[str, Any]], following: str | None
    ) -> None:
        added = await self.ctx.staging.stage_page(step, data, next_url=following)
        await self.ctx.on_progress(resources_added=added)

    async def _read(self, key: tuple[str, str], depth: int, chain: Chain) -> None:
        ctx = self.ctx
        resource_type, resource_id = key
        url = f"{resource_type}/{resource_id}"
        chain = (*chain, f"{resource_type} read")
        self.note(chain)
        try:
            resource = await ctx.source.get_json(url)
        except FetchError as exc:
            await _give_up(ctx, f"read:{url}", exc, resource_type)
            return
        # What it names is started before its row is written (nothing waits for the database).
        self.staged.add(key)
        self.found(resource, depth, chain)
        added = await ctx.staging.stage_resources([resource])
        await ctx.on_progress(resources_added=added)

    async def _download(
        self, binary_id: str, url: str, content_type: str | None, chain: Chain
    ) -> None:
        ctx = self.ctx
        self.note((*chain, "attachment"))
        sink = _MemorySink(ctx.staging_limit or STAGING_LIMIT, self.memory)
        try:
            await self._stage_download(binary_id, url, content_type, sink)
        finally:
            self.memory.release(sink.reserved)

    async def _stage_download(
        self, binary_id: str, url: str, content_type: str | None, sink: _MemorySink
    ) -> None:
        ctx = self.ctx
        try:
            result = await ctx.source.download(url, sink)
        except TooLarge:
            # Too large to stage: packaging downloads it once, into the export file.
            await ctx.staging.defer_attachment(
                binary_id,
                source_url=url,
                content_type=content_type or sink.served_type or None,
                size=sink.declared_size,
            )
            return
        if isinstance(result, FetchError):
            await _give_up(ctx, f"attachment:{binary_id}", result, "Binary")
            return
        # No checkpoint besides: the attachment's own record says it is staged (a checkpoint is
        # kept only for an attachment that failed).
        size = await ctx.staging.stage_attachment(
            binary_id,
            source_url=url,
            content_type=content_type or result or "application/octet-stream",
            chunks=sink.take(),
        )
        await ctx.on_progress(attachment_bytes=size)


class _MemoryBudget:
    """Bytes that downloads in flight may hold in memory, granted first come, first served; each
    reservation is at most the whole budget, so the first in line always gets it in the end."""

    def __init__(self, total: int) -> None:
        self.free = total
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def reserve(self, size: int) -> None:
        if not self._waiting and self.free >= size:
            self.free -= size
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((size, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(size)  # granted just as it was cancelled: pass it on
            raise

    def release(self, size: int) -> None:
        self.free += size
        while self._waiting and self.free >= self._waiting[0][0]:
            wanted, granted = self._waiting.popleft()
            if granted.done():  # its download was cancelled while it waited
                continue
            self.free -= wanted
            granted.set_result(None)


class _MemorySink:
    """An attachment's chunks, up to `limit` bytes (TooLarge past it, or when declared larger),
    within the crawl's memory budget: the declared length (else `limit`) is reserved before the
    first chunk and released by the caller (`reserved`) once the chunks are staged."""

    def __init__(self, limit: int, budget: _MemoryBudget) -> None:
        self.limit = limit
        self.budget = budget
        self.reserved = 0
        self.chunks: list[bytes] = []
        self.size = 0
        self.served_type = ""
        self.declared_size: int | None = None

    async def begin(self, content_type: str, declared_size: int | None) -> None:
        self.served_type, self.declared_size = content_type, declared_size
        if declared_size is not None and declared_size > self.limit:
            raise TooLarge
        if not self.reserved:  # kept over a restart
            wanted = self.limit if declared_size is None else declared_size
            await self.budget.reserve(wanted)
            self.reserved = wanted

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.chunks.clear()
            raise TooLarge
        self.chunks.append(chunk)

    async def restart(self) -> None:
        self.chunks.clear()
        self.size = 0

    def take(self) -> list[bytes]:
        chunks, self.chunks = self.chunks, []
        return chunks


def _page_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The patient's resources on a search page: OperationOutcomes in a searchset report
    problems, they are not the patient's data."""
    resources = [
        entry["resource"]
        for entry in bundle.get("entry", [])
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]
    return [r for r in resources if r.get("resourceType") != "OperationOutcome"]


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


async def _give_up(
    ctx: CrawlContext, step: str, failure: FetchError, resource_type: str | None
) -> None:
    """Record a failure in the error report and mark its step done, in one write."""
    outcome = failure.outcome(resource_type)
    await ctx.staging.record_failure(step, outcome)
