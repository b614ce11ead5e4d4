"""Crawl one patient's record into an export's staging area.

Phases, each resumable because every unit of work is checkpointed in the database:

1. discover — the CapabilityStatement (what the server supports, `$everything`).
2. patient — `Patient/{id}`; without it there is nothing to export (`resource_patient_failure`).
3. resources — `Patient/$everything` where advertised and trusted, else one paged search per
   patient-compartment type the granted scopes allow (vendor quirks decide fan-outs); each page is
   staged together with the link to the next one, so a resumed crawl continues at that page.
4. hydrate — resources referenced but not collected (practitioners, organizations, locations,
   medications, observations), then every attachment, downloaded to a blob of its own.

A page or resource that cannot be had after retries becomes an OperationOutcome in the error
report; it never aborts the export. Token trouble (refresh refused) and the deadline do. So does a
URL the session's SSRF guard refuses (an attachment or `next` link pointing inside our network): it
is listed with the reason (code `security`), and nothing is sent to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ehiconnect.crawler.fetch import FetchError, FhirSession
from ehiconnect.crawler.plan import CrawlPlan, plan_crawl
from ehiconnect.crawler.quirks import VendorQuirks
from ehiconnect.db.database import Database
from ehiconnect.errors import FatalError
from ehiconnect.exports import staging
from ehiconnect.exports.storage.port import BlobStore
from ehiconnect.fhir.binary import binary_id_for_attachment
from ehiconnect.fhir.capability import CapabilityError, parse_capability_statement
from ehiconnect.fhir.outcome import operation_outcome, outcome_for_http_failure
from ehiconnect.fhir.references import iter_attachments, iter_references, resolve_attachment_url
from ehiconnect.http.ssrf import TargetRefused

log = logging.getLogger(__name__)

HYDRATION_PASSES = 3


@dataclass
class CrawlContext:
    task_id: str
    database: Database
    session: FhirSession
    blobs: BlobStore
    patient_id: str
    granted_scope: str
    quirks: VendorQuirks
    page_size: int
    on_progress: Callable[..., Awaitable[None]]


async def crawl(ctx: CrawlContext) -> None:
    await ctx.on_progress(phase="discover")
    try:
        capabilities = parse_capability_statement(await ctx.session.get_json("metadata"))
    except (FetchError, CapabilityError) as exc:
        raise FatalError(
            f"the health system's CapabilityStatement could not be read ({exc})",
            failure_reason="resource_invalid_content",
        ) from None
    plan = plan_crawl(
        capabilities,
        ctx.granted_scope,
        ctx.quirks,
        patient_id=ctx.patient_id,
        page_size=ctx.page_size,
    )
    await ctx.on_progress(phase="patient")
    await _fetch_patient(ctx, plan)
    await ctx.on_progress(phase="resources")
    if plan.everything_url:
        await _crawl_search(ctx, "everything", plan.everything_url, None)
    else:
        await asyncio.gather(
            *(_crawl_search(ctx, f"search:{s.url}", s.url, s.resource_type) for s in plan.searches)
        )
    await ctx.on_progress(phase="hydrate")
    await _hydrate_references(ctx, plan)
    await _hydrate_attachments(ctx)


async def _fetch_patient(ctx: CrawlContext, plan: CrawlPlan) -> None:
    try:
        patient = await ctx.session.get_json(plan.patient_read_url)
    except FetchError as exc:
        raise FatalError(
            f"the patient's own record could not be read ({exc.detail})",
            failure_reason="resource_patient_failure",
        ) from None
    if patient.get("resourceType") != "Patient":
        raise FatalError(
            "the health system answered the patient read with something else",
            failure_reason="resource_invalid_content",
        )
    async with ctx.database.transaction() as session:
        added = await staging.stage_resources(session, ctx.task_id, [patient])
    await ctx.on_progress(resources_added=added)


async def _crawl_search(
    ctx: CrawlContext, step: str, first_url: str, resource_type: str | None
) -> None:
    async with ctx.database.transaction() as session:
        saved = await staging.get_step(session, ctx.task_id, step)
    if saved is not None and saved.done:
        return
    url: str | None = saved.cursor if saved is not None and saved.cursor else first_url
    while url is not None:
        try:
            bundle = await ctx.session.get_json(url)
        except FetchError as exc:
            await _give_up(ctx, step, exc, resource_type)
            return
        resources = [
            entry["resource"]
            for entry in bundle.get("entry", [])
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
        ]
        # OperationOutcomes in a searchset report problems, they are not the patient's data.
        data = [r for r in resources if r.get("resourceType") != "OperationOutcome"]
        following = _next_link(bundle)
        async with ctx.database.transaction() as session:
            added = await staging.stage_resources(session, ctx.task_id, data)
            await staging.save_step(
                session, ctx.task_id, step, cursor=following, done=following is None, added=added
            )
        await ctx.on_progress(resources_added=added)
        url = following


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


async def _hydrate_references(ctx: CrawlContext, plan: CrawlPlan) -> None:
    base = ctx.session.base_url
    for _ in range(HYDRATION_PASSES):
        wanted: set[tuple[str, str]] = set()
        async for _, _, body in staging.iter_items(ctx.database, ctx.task_id):
            resource = orjson.loads(body)
            for reference in iter_references(resource, base):
                if (
                    reference.is_fetchable
                    and reference.resource_type in plan.hydrate_types
                    and reference.resource_id
                ):
                    wanted.add((reference.resource_type, reference.resource_id))
        async with ctx.database.transaction() as session:
            missing = wanted - await staging.staged_keys(session, ctx.task_id, wanted)
            failed = {
                key
                for key in missing
                if await staging.get_step(session, ctx.task_id, f"read:{key[0]}/{key[1]}")
            }
        missing -= failed
        if not missing:
            return
        await asyncio.gather(*(_read_one(ctx, t, i) for t, i in sorted(missing)))


async def _read_one(ctx: CrawlContext, resource_type: str, resource_id: str) -> None:
    url = f"{resource_type}/{resource_id}"
    try:
        resource = await ctx.session.get_json(url)
    except FetchError as exc:
        await _give_up(ctx, f"read:{url}", exc, resource_type)
        return
    async with ctx.database.transaction() as session:
        added = await staging.stage_resources(session, ctx.task_id, [resource])
    await ctx.on_progress(resources_added=added)


async def _hydrate_attachments(ctx: CrawlContext) -> None:
    base = ctx.session.base_url
    pending: dict[str, tuple[str, str | None]] = {}
    async for _, _, body in staging.iter_items(ctx.database, ctx.task_id):
        for attachment in iter_attachments(orjson.loads(body)):
            if attachment.has_inline_data or not attachment.url:
                continue
            source = resolve_attachment_url(attachment.url, base)
            if source is None:
                continue
            binary_id = binary_id_for_attachment(source.url, base)
            pending.setdefault(binary_id, (source.url, attachment.content_type))
    async with ctx.database.transaction() as session:
        for binary_id in list(pending):
            step = await staging.get_step(session, ctx.task_id, f"attachment:{binary_id}")
            if step is not None and step.done:
                del pending[binary_id]
    await asyncio.gather(
        *(
            _download(ctx, binary_id, url, content_type)
            for binary_id, (url, content_type) in sorted(pending.items())
        )
    )


async def _download(ctx: CrawlContext, binary_id: str, url: str, content_type: str | None) -> None:
    key = f"staging/{ctx.task_id}/{binary_id}"
    attempt = 0
    while True:
        try:
            # The session sends the patient's token only to URLs under the FHIR base.
            async with ctx.session.stream(url) as response:
                served_type = response.headers.get("content-type", "").split(";")[0].strip()
                async with ctx.blobs.open_writer(key) as writer:
                    async for chunk in response.aiter_bytes(1 << 20):
                        await writer.write(chunk)
                stored = writer.stored
            break
        except FetchError as exc:
            await _attachment_failed(ctx, binary_id, exc)
            return
        except TargetRefused as exc:  # too large a response from outside the base
            refused = FetchError(url, None, str(exc), refused=True)
            await _attachment_failed(ctx, binary_id, refused)
            return
        except httpx.HTTPError as exc:
            # The body broke off mid-stream: start the download again, a bounded number of times.
            attempt += 1
            if attempt >= ctx.session.policy.max_attempts:
                detail = f"the download broke off {attempt} times ({type(exc).__name__})"
                await _attachment_failed(ctx, binary_id, FetchError(url, None, detail))
                return
            await asyncio.sleep(ctx.session.policy.backoff_seconds(attempt, random.random))
    async with ctx.database.transaction() as session:
        await staging.mark_attachment(
            session,
            ctx.task_id,
            binary_id,
            source_url=url,
            content_type=content_type or served_type or "application/octet-stream",
            blob_key=key,
            size=stored.size,
            done=True,
        )
        await staging.save_step(
            session, ctx.task_id, f"attachment:{binary_id}", cursor=None, done=True, added=1
        )
    await ctx.on_progress(attachment_bytes=stored.size)


async def _attachment_failed(ctx: CrawlContext, binary_id: str, failure: FetchError) -> None:
    await _give_up(ctx, f"attachment:{binary_id}", failure, "Binary")


async def _give_up(
    ctx: CrawlContext, step: str, failure: FetchError, resource_type: str | None
) -> None:
    """Record a failure in the error report and mark its step done, in one transaction."""
    if failure.refused:
        # Why it was refused, never a response body: nothing was fetched.
        outcome = operation_outcome(
            diagnostics=f"Not fetched: {failure.detail}",
            code="security",
            url=failure.url,
            resource_type=resource_type,
        )
    else:
        outcome = outcome_for_http_failure(
            url=failure.url,
            status=failure.status,
            resource_type=resource_type,
            detail=failure.detail,
        )
    async with ctx.database.transaction() as session:
        await staging.record_error(session, ctx.task_id, outcome)
        await staging.save_step(session, ctx.task_id, step, cursor=None, done=True, added=0)
