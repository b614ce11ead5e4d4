"""Run one export task: crawl, package, publish — or fail with a reason. Called by the job.

At-least-once safe: a task that is no longer pending is left alone, and a task whose worker died
is resumed from its staging area by whichever worker picks the job up again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit, tracing
from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.refresh_policy import RefreshMargin
from ehiconnect.connections.tokens import fresh_access_token
from ehiconnect.crawler.engine import CrawlContext, crawl
from ehiconnect.crawler.fetch import AdaptiveLimiter, FhirSession, OutboundAccess
from ehiconnect.crawler.policy import ConcurrencyBounds, RetryPolicy
from ehiconnect.crawler.quirks import quirks_for
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError, ReconsentRequired
from ehiconnect.exports import staging, telemetry
from ehiconnect.exports.models import ExportAttachment, ExportTask
from ehiconnect.exports.package import discard_partial, package_errors, package_export
from ehiconnect.exports.states import CANCELLED, FAILED, PENDING, SUCCESS, public_failure_reason
from ehiconnect.ids import as_api_mode
from ehiconnect.runtime import Runtime
from ehiconnect.settings import ExportSettings
from ehiconnect.storage.port import BlobStore
from ehiconnect.webhooks.outbox import emit
from ehiconnect.webhooks.payloads import EhiExportFailed, EhiExportSuccess

log = logging.getLogger(__name__)

# Runs that may end in an unexpected error before the export is given up. A run killed with its
# worker (and recovered as a stalled job) is not a failure and does not count.
MAX_FAILURES = 3
PROGRESS_INTERVAL = 0.25  # seconds between writes of an export's progress counters


class Cancelled(Exception):
    pass


def retry_policy(settings: ExportSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_seconds=settings.backoff_base_seconds,
        cap_seconds=settings.backoff_cap_seconds,
        retry_after_cap_seconds=settings.retry_after_cap_seconds,
    )


def download_url(runtime: Runtime, task_id: str, file_id: str) -> str:
    base = runtime.settings.public_base_url.rstrip("/")
    return f"{base}/v1/bridge/fhir/ehi-export/{task_id}/download/{file_id}"


async def run_export(runtime: Runtime, task_id: str, *, traceparent: str | None = None) -> str:
    """Drive the task to an end state; returns that state.

    Traced (when tracing is on) as an `export` span starting a trace of its own, linked to the
    request that asked for the export (`traceparent`), with one child span per phase.
    """
    phases = tracing.PhaseSpans("export")
    attributes = {"ehiconnect.task_id": task_id}
    with tracing.span("export", attributes, link=traceparent, root=True) as span:
        try:
            state = await _run_export(runtime, task_id, phases)
        finally:
            phases.close()
        span.set_attribute("ehiconnect.export.outcome", state)
        if tracing.enabled():
            await _describe_span(runtime, task_id, span)
        return state


async def _describe_span(runtime: Runtime, task_id: str, span: tracing.SpanHandle) -> None:
    """Ids and the failure reason on the export span: never patient data."""
    async with runtime.database.transaction() as session:
        task = await session.get(ExportTask, task_id)
    if task is None:
        return
    span.set_attribute("ehiconnect.org_id", task.org_id)
    span.set_attribute("ehiconnect.org_connection_id", task.org_connection_id)
    span.set_attribute("ehiconnect.api_mode", task.api_mode)
    if task.failure_reason:
        span.set_attribute("ehiconnect.failure_reason", task.failure_reason)
        span.fail(task.failure_reason)


async def _run_export(runtime: Runtime, task_id: str, phases: tracing.PhaseSpans) -> str:
    blobs = runtime.blobs
    clock = runtime.clock
    async with runtime.database.transaction() as session:
        task = await session.get(ExportTask, task_id)
        if task is None or task.status != PENDING:
            return task.status if task else "missing"
        connection = await session.get(OrgConnection, task.org_connection_id)
        endpoint = (
            await session.get(CatalogEndpoint, connection.catalog_endpoint_id)
            if connection
            else None
        )
        task.runs += 1
        task.started_at = task.started_at or clock.now()
        if connection is None or endpoint is None or connection.status == "revoked":
            failure: FatalError | None = FatalError(
                "the connection was revoked before the export ran; the patient must reconnect",
                failure_reason="token_refresh_failure",
            )
        elif not connection.source_patient_id or not connection.fhir_base_url:
            failure = FatalError(
                "the connection names no patient", failure_reason="scope_patient_missing"
            )
        else:
            failure = None
            fhir_base = connection.fhir_base_url
            patient_id = connection.source_patient_id
            scope = connection.scope or ""
            platform_type = endpoint.platform_type
            # Off-base URLs may reach private addresses only in test mode (the sandbox runs on
            # loopback) or where the operator said the health system lives on a private network.
            allow_private = endpoint.reachable_privately(connection.api_mode)
    telemetry.export_started(task, connection.platform_type if connection else "unknown")
    if failure is not None:
        return await _fail(runtime, task_id, failure.failure_reason, str(failure))

    settings = runtime.settings.exports
    consent = runtime.settings.consent
    margin = RefreshMargin(
        consent.token_refresh_margin_seconds, consent.token_refresh_margin_fraction
    )

    async def token(rejected: str | None) -> str:
        return await fresh_access_token(
            runtime.database,
            runtime.cipher,
            clock,
            runtime.http,
            runtime.jobs,
            task.org_connection_id,
            margin=margin,
            rejected=rejected,
            signer=runtime.client_signer,
        )

    session_ = FhirSession(
        fhir_base,
        token,
        access=OutboundAccess(
            allow_private=allow_private,
            timeout_seconds=settings.request_timeout_seconds,
            max_off_base_bytes=settings.max_off_base_response_bytes,
        ),
        policy=retry_policy(settings),
        limiter=AdaptiveLimiter(
            ConcurrencyBounds(
                minimum=settings.min_concurrency,
                maximum=settings.max_concurrency,
                # Start at the ceiling: throttling halves it quickly, and small exports never
                # make enough requests to climb up from below.
                initial=settings.max_concurrency,
            )
        ),
        clock=clock,
        deadline=task.deadline_at,
    )

    # Counters add up here and go to the database at most every PROGRESS_INTERVAL seconds (and
    # at each phase change): a crawl makes many requests at once, and one UPDATE of the task's
    # row per page, read or download would queue them all on that row's lock.
    pending_counts = {"resources": 0, "bytes": 0}
    last_write = [float("-inf")]
    writing = asyncio.Lock()

    async def on_progress(
        phase: str | None = None,
        resources_added: int = 0,
        attachment_bytes: int = 0,
        crawl_report: dict[str, Any] | None = None,
        flush: bool = False,
    ) -> None:
        pending_counts["resources"] += resources_added
        pending_counts["bytes"] += attachment_bytes
        due = time.monotonic() - last_write[0] >= PROGRESS_INTERVAL
        if phase is None and crawl_report is None and not flush and not due:
            return
        if phase is not None:
            phases.enter(phase)  # the phase's requests become its span's children
        async with writing:
            resources, sent_bytes = pending_counts["resources"], pending_counts["bytes"]
            pending_counts["resources"] = pending_counts["bytes"] = 0
            last_write[0] = time.monotonic()
            try:
                still_pending = await _record_progress(
                    runtime,
                    task_id,
                    phase=phase,
                    resources=resources,
                    attachment_bytes=sent_bytes,
                    requests=session_.requests,
                    retries=session_.retries,
                    extra=crawl_report or {},
                )
            except BaseException:
                pending_counts["resources"] += resources
                pending_counts["bytes"] += sent_bytes
                raise
        if not still_pending:
            raise Cancelled
        if phase is not None:
            telemetry.phase_changed(task, phase)

    context = CrawlContext(
        source=session_,
        staging=staging.ExportStaging(runtime.database, blobs, task_id),
        patient_id=patient_id,
        granted_scope=scope,
        quirks=quirks_for(platform_type),
        # The largest page the vendor accepts unless the operator chose a size.
        page_size=settings.page_size if "page_size" in settings.model_fields_set else None,
        on_progress=on_progress,
    )
    try:
        async with session_:
            await crawl(context)
            await on_progress(phase="package")
            # The session stays open: packaging downloads the attachments too large to stage.
            return await _publish(runtime, blobs, task_id, session_, on_progress)
    except Cancelled:
        await discard_staging(runtime, task_id)
        return CANCELLED
    except ReconsentRequired as exc:
        return await _fail(runtime, task_id, "token_refresh_failure", str(exc))
    except FatalError as exc:
        return await _fail(runtime, task_id, exc.failure_reason, str(exc))
    except Exception:
        if await _count_failure(runtime, task_id) >= MAX_FAILURES:
            log.exception("export failed unexpectedly; giving up", extra={"task_id": task_id})
            return await _fail(
                runtime,
                task_id,
                "suppressed_please_contact",
                "the export failed unexpectedly several times; contact the platform operator",
            )
        raise  # the job is retried and resumes from the staging area


async def _record_progress(
    runtime: Runtime,
    task_id: str,
    *,
    phase: str | None,
    resources: int,
    attachment_bytes: int,
    requests: int,
    retries: int,
    extra: dict[str, Any],
) -> bool:
    """Add to the task's progress counters in one atomic UPDATE; False once it is not pending."""
    async with runtime.database.transaction() as db:
        still_pending = await db.scalar(
            text(
                """
                UPDATE export_tasks SET
                  phase = coalesce(:phase, phase),
                  progress = progress || jsonb_build_object(
                    'resources', coalesce((progress->>'resources')::bigint, 0) + :resources,
                    'attachment_bytes',
                      coalesce((progress->>'attachment_bytes')::bigint, 0) + :bytes,
                    'requests', :requests,
                    'retries', :retries)
                  || CAST(:extra AS jsonb)
                WHERE task_id = :task_id AND status = 'pending'
                RETURNING true
                """
            ),
            {
                "phase": phase,
                "resources": resources,
                "bytes": attachment_bytes,
                "requests": requests,
                "retries": retries,
                "extra": orjson.dumps(extra).decode(),
                "task_id": task_id,
            },
        )
    return bool(still_pending)


async def _publish(
    runtime: Runtime,
    blobs: BlobStore,
    task_id: str,
    fhir: FhirSession,
    on_progress: Callable[..., Awaitable[None]],
) -> str:
    clock = runtime.clock

    def new_file_id() -> str:
        # The file's name is its id, as Fasten's are: a client that names the download after the
        # URL's last segment stores `…jsonl`. Older exports' bare-UUID ids keep working.
        return f"{clock.now():%Y-%m-%d}-{uuid.uuid4()}.jsonl"

    packaged = await package_export(
        runtime.database,
        blobs,
        task_id,
        new_file_id=new_file_id,
        session=fhir,
        on_progress=on_progress,
    )
    key, file_id = packaged.key, packaged.file_id
    await on_progress(flush=True)  # the last attachment bytes packaging counted
    error_key = f"exports/{task_id}/errors.ndjson"
    error_count, _ = await package_errors(runtime.database, blobs, task_id, error_key)
    settings = runtime.settings.exports
    async with runtime.database.transaction() as session:
        task = await session.get(ExportTask, task_id, with_for_update=True)
        if task is None or task.status != PENDING:
            await blobs.delete(key)  # cancelled meanwhile: leave no copy of the record behind
            await blobs.delete(error_key)
            return task.status if task else "missing"
        done = clock.now()
        task.status = SUCCESS
        task.phase = "done"
        task.completed_at = done
        task.expires_at = done + dt.timedelta(hours=settings.retention_hours)
        task.file_id = file_id
        task.file_key = key
        task.file_size = packaged.size
        task.sha256 = packaged.sha256
        task.error_key = error_key if error_count else None
        task.error_count = error_count
        task.stats = {
            "total_resources": packaged.total_resources,
            "total_by_resource_type": packaged.by_resource_type,
        }
        links_expire = done + dt.timedelta(hours=settings.link_lifetime_hours)
        data: dict[str, Any] = {
            "org_connection_id": task.org_connection_id,
            "task_id": task_id,
            "org_id": task.org_id,
            "download_links": [
                {
                    "url": download_url(runtime, task_id, file_id),
                    "export_type": "jsonl",
                    "content_type": "application/fhir+ndjson",
                    "expires_at": min(links_expire, task.expires_at).isoformat(),
                    "size": packaged.size,
                    "sha256": packaged.sha256,
                }
            ],
            "stats": task.stats,
        }
        await emit(
            session,
            clock=clock,
            org_id=task.org_id,
            api_mode=as_api_mode(task.api_mode),
            event=EhiExportSuccess.model_validate(data),
        )
        await audit.record(
            session,
            clock,
            actor="system",
            action="export.completed",
            org_id=task.org_id,
            org_connection_id=task.org_connection_id,
            task_id=task_id,
            detail={"resources": packaged.total_resources, "errors": error_count},
        )
        platform_type = await platform_type_of(session, task)
    telemetry.export_ended(task, platform_type)
    await discard_staging(runtime, task_id)
    return SUCCESS


async def _count_failure(runtime: Runtime, task_id: str) -> int:
    """Record that a run ended in an unexpected error; how many have so far."""
    async with runtime.database.transaction() as session:
        failures = await session.scalar(
            text(
                "UPDATE export_tasks SET failures = failures + 1 WHERE task_id = :task_id "
                "RETURNING failures"
            ),
            {"task_id": task_id},
        )
    return int(failures or 0)


async def _fail(runtime: Runtime, task_id: str, reason: str, description: str) -> str:
    if await fail_task(runtime, task_id, reason, description):
        return FAILED
    async with runtime.database.transaction() as session:
        task = await session.get(ExportTask, task_id)
        return task.status if task else "missing"


async def fail_task(runtime: Runtime, task_id: str, reason: str, description: str) -> bool:
    """End a pending task as failed with `reason`, emitting the event; False if it had ended."""
    clock = runtime.clock
    async with runtime.database.transaction() as session:
        # Locked: the worker, the reconciler and a cancellation may all try to end it at once.
        task = await session.get(ExportTask, task_id, with_for_update=True)
        if task is None or task.status != PENDING:
            return False
        task.status = FAILED
        # Where it stopped, for failure review ("timeout while hydrating"), before phase ends.
        task.progress = {**task.progress, "failed_in_phase": task.phase}
        task.phase = "done"
        task.completed_at = clock.now()
        task.failure_reason = public_failure_reason(reason)
        task.failure_description = description
        await emit(
            session,
            clock=clock,
            org_id=task.org_id,
            api_mode=as_api_mode(task.api_mode),
            event=EhiExportFailed.model_validate(
                {
                    "org_connection_id": task.org_connection_id,
                    "task_id": task_id,
                    "org_id": task.org_id,
                    "failure_reason": task.failure_reason,
                    "failure_description": description,
                }
            ),
        )
        await audit.record(
            session,
            clock,
            actor="system",
            action="export.failed",
            org_id=task.org_id,
            org_connection_id=task.org_connection_id,
            task_id=task_id,
            detail={"failure_reason": task.failure_reason},
        )
        platform_type = await platform_type_of(session, task)
    telemetry.export_ended(task, platform_type)
    await discard_staging(runtime, task_id)
    return True


async def platform_type_of(session: AsyncSession, task: ExportTask) -> str:
    """The health system's platform type (a metric label) of the task's connection."""
    connection = await session.get(OrgConnection, task.org_connection_id)
    return connection.platform_type if connection else "unknown"


async def discard_staging(runtime: Runtime, task_id: str) -> None:
    """Delete a task's staging rows and staged attachment blobs (idempotent)."""
    blobs = runtime.blobs
    await discard_partial(runtime.database, blobs, task_id)
    async with runtime.database.transaction() as session:
        keys = list(
            await session.scalars(
                select(ExportAttachment.blob_key).where(
                    ExportAttachment.task_id == task_id, ExportAttachment.blob_key.is_not(None)
                )
            )
        )
        await staging.clear_staging(session, task_id)
    for key in keys:
        if key:
            await blobs.delete(key)
