"""Run one export task: crawl, package, publish — or fail with a reason. Called by the job.

At-least-once safe: a task that is no longer pending is left alone, and a task whose worker died
is resumed from its staging area by whichever worker picks the job up again.

One run, step by step: `_start_run` counts the run and reads what to crawl (or why it cannot
be crawled); `_fhir_session` opens the health system with the export's limits; the crawl stages
what it finds; `_publish` packages the staging area into the file and completes the task;
`_settle` turns what stopped the run into the task's end (or a retry of the job).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from dataclasses import dataclass

from ehiconnect import tracing
from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.crawler.engine import CrawlContext, crawl
from ehiconnect.crawler.fetch import AdaptiveLimiter, FhirSession, OutboundAccess
from ehiconnect.crawler.policy import ConcurrencyBounds, RetryPolicy
from ehiconnect.crawler.quirks import quirks_for
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError, ReconsentRequired
from ehiconnect.exports import staging, telemetry
from ehiconnect.exports.endings import (
    MISSING,
    ErrorReport,
    complete_task,
    count_failure,
    discard_ended_staging,
    end_as_failed,
)
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.package import error_report_key, package_errors, package_export
from ehiconnect.exports.ports import ExportPorts
from ehiconnect.exports.progress import Cancelled, ProgressRecorder
from ehiconnect.exports.staged_db import DatabaseStagedExport
from ehiconnect.settings import ExportSettings
from ehiconnect.vocabulary import (
    ConnectionStatus,
    ExportFailureReason,
    ExportPhase,
    ExportStatus,
)

log = logging.getLogger(__name__)

# Runs that may end in an unexpected error before the export is given up. A run killed with its
# worker (and recovered as a stalled job) is not a failure and does not count.
MAX_FAILURES = 3


@dataclass(frozen=True)
class CrawlTarget:
    """What a run crawls: one patient at one health system, as the connection grants it."""

    org_connection_id: str
    fhir_base: str
    patient_id: str
    granted_scope: str
    platform_type: str
    allow_private: bool
    """Off-base URLs may reach private addresses (test mode, or a private health system)."""


@dataclass(frozen=True)
class _Run:
    task: ExportTask  # as read when the run started (ids, counters, the deadline)
    target: CrawlTarget | FatalError  # or why the connection cannot be crawled


def _retry_policy(settings: ExportSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_seconds=settings.backoff_base_seconds,
        cap_seconds=settings.backoff_cap_seconds,
        retry_after_cap_seconds=settings.retry_after_cap_seconds,
    )


async def run_export(ports: ExportPorts, task_id: str, *, traceparent: str | None = None) -> str:
    """Drive the task to an end state; returns that state.

    Traced (when tracing is on) as an `export` span starting a trace of its own, linked to the
    request that asked for the export (`traceparent`), with one child span per phase.
    """
    phases = tracing.PhaseSpans("export")
    attributes = {"ehiconnect.task_id": task_id}
    with tracing.span("export", attributes, link=traceparent, root=True) as span:
        try:
            state = await _run_export(ports, task_id, phases)
        finally:
            phases.close()
        span.set_attribute("ehiconnect.export.outcome", state)
        if tracing.enabled():
            await _describe_span(ports, task_id, span)
        return state


async def _describe_span(ports: ExportPorts, task_id: str, span: tracing.SpanHandle) -> None:
    """Ids and the failure reason on the export span: never patient data."""
    async with ports.database.transaction() as session:
        task = await session.get(ExportTask, task_id)
    if task is None:
        return
    span.set_attribute("ehiconnect.org_id", task.org_id)
    span.set_attribute("ehiconnect.org_connection_id", task.org_connection_id)
    span.set_attribute("ehiconnect.api_mode", task.api_mode)
    if task.failure_reason:
        span.set_attribute("ehiconnect.failure_reason", task.failure_reason)
        span.fail(task.failure_reason)


async def _run_export(ports: ExportPorts, task_id: str, phases: tracing.PhaseSpans) -> str:
    run = await _start_run(ports, task_id)
    if isinstance(run, str):
        return run  # not pending: ended meanwhile, or another run finished it
    if isinstance(run.target, FatalError):
        return await end_as_failed(ports, task_id, run.target.failure_reason, str(run.target))
    session = _fhir_session(ports, run.target, run.task.deadline_at)
    progress = ProgressRecorder(ports.database, run.task, session, phases)
    try:
        async with session:
            await crawl(_crawl_context(ports, task_id, run.target, session, progress))
            await progress(phase=ExportPhase.PACKAGE)
            # The session stays open: packaging downloads the attachments too large to stage.
            return await _publish(ports, task_id, session, progress)
    except Exception as exc:
        return await _settle(ports, task_id, exc)


async def _start_run(ports: ExportPorts, task_id: str) -> _Run | str:
    """Count a run of the pending task and read what it crawls; the task's state otherwise."""
    async with ports.database.transaction() as session:
        task = await session.get(ExportTask, task_id)
        if task is None or task.status != ExportStatus.PENDING:
            return task.status if task else MISSING
        connection = await session.get(OrgConnection, task.org_connection_id)
        endpoint = (
            await session.get(CatalogEndpoint, connection.catalog_endpoint_id)
            if connection
            else None
        )
        task.runs += 1
        task.started_at = task.started_at or ports.clock.now()
    telemetry.export_started(task, connection.platform_type if connection else "unknown")
    return _Run(task, crawl_target(connection, endpoint))


def crawl_target(
    connection: OrgConnection | None, endpoint: CatalogEndpoint | None
) -> CrawlTarget | FatalError:
    """What to crawl for the connection, or why it cannot be (the failure to report)."""
    if connection is None or endpoint is None or connection.status == ConnectionStatus.REVOKED:
        return FatalError(
            "the connection was revoked before the export ran; the patient must reconnect",
            failure_reason=ExportFailureReason.TOKEN_REFRESH_FAILURE,
        )
    if not connection.source_patient_id or not connection.fhir_base_url:
        return FatalError(
            "the connection names no patient",
            failure_reason=ExportFailureReason.SCOPE_PATIENT_MISSING,
        )
    return CrawlTarget(
        org_connection_id=connection.org_connection_id,
        fhir_base=connection.fhir_base_url,
        patient_id=connection.source_patient_id,
        granted_scope=connection.scope or "",
        platform_type=endpoint.platform_type,
        # Off-base URLs may reach private addresses only in test mode (the sandbox runs on
        # loopback) or where the operator said the health system lives on a private network.
        allow_private=endpoint.reachable_privately(connection.api_mode),
    )


def _fhir_session(ports: ExportPorts, target: CrawlTarget, deadline: dt.datetime) -> FhirSession:
    """The health system, reached within the export's limits and renewing the connection's
    access token when the health system refuses it."""
    settings = ports.settings
    return FhirSession(
        target.fhir_base,
        functools.partial(ports.access_token, target.org_connection_id),
        access=OutboundAccess(
            allow_private=target.allow_private,
            timeout_seconds=settings.request_timeout_seconds,
            max_off_base_bytes=settings.max_off_base_response_bytes,
            max_json_bytes=settings.max_json_response_bytes,
        ),
        policy=_retry_policy(settings),
        limiter=AdaptiveLimiter(
            ConcurrencyBounds(
                minimum=settings.min_concurrency,
                maximum=settings.max_concurrency,
                # Start at the ceiling: throttling halves it quickly, and small exports never
                # make enough requests to climb up from below.
                initial=settings.max_concurrency,
            )
        ),
        clock=ports.clock,
        deadline=deadline,
    )


def _crawl_context(
    ports: ExportPorts,
    task_id: str,
    target: CrawlTarget,
    source: FhirSession,
    progress: ProgressRecorder,
) -> CrawlContext:
    settings = ports.settings
    return CrawlContext(
        source=source,
        staging=staging.ExportStaging(ports.database, ports.blobs, task_id),
        patient_id=target.patient_id,
        granted_scope=target.granted_scope,
        quirks=quirks_for(target.platform_type),
        # The largest page the vendor accepts unless the operator chose a size.
        page_size=settings.page_size if "page_size" in settings.model_fields_set else None,
        on_progress=progress,
    )


async def _publish(
    ports: ExportPorts, task_id: str, fhir: FhirSession, progress: ProgressRecorder
) -> str:
    """Package the staging area into the export file and its error report; complete the task."""
    clock = ports.clock

    def new_file_id() -> str:
        # The file's name is its id, as Fasten's are: a client that names the download after the
        # URL's last segment stores `…jsonl`. Older exports' bare-UUID ids keep working.
        return f"{clock.now():%Y-%m-%d}-{uuid.uuid4()}.jsonl"

    staged = DatabaseStagedExport(ports.database, task_id)
    packaged = await package_export(
        staged, ports.blobs, task_id, new_file_id=new_file_id, source=fhir, on_progress=progress
    )
    await progress.flush()  # the last attachment bytes packaging counted
    key = error_report_key(task_id)
    error_count, _ = await package_errors(staged, ports.blobs, key)
    errors = ErrorReport(key if error_count else None, error_count)
    return await complete_task(ports, task_id, packaged, errors)


async def _settle(ports: ExportPorts, task_id: str, exc: Exception) -> str:
    """The task's state after a run stopped by `exc`; re-raises what the job should retry."""
    if isinstance(exc, Cancelled):
        await discard_ended_staging(ports.database, ports.blobs, task_id)
        return ExportStatus.CANCELLED
    if isinstance(exc, ReconsentRequired):
        return await end_as_failed(
            ports, task_id, ExportFailureReason.TOKEN_REFRESH_FAILURE, str(exc)
        )
    if isinstance(exc, FatalError):
        return await end_as_failed(ports, task_id, exc.failure_reason, str(exc))
    if await count_failure(ports.database, task_id) >= MAX_FAILURES:
        log.exception("export failed unexpectedly; giving up", extra={"task_id": task_id})
        return await end_as_failed(
            ports,
            task_id,
            ExportFailureReason.SUPPRESSED_PLEASE_CONTACT,
            "the export failed unexpectedly several times; contact the platform operator",
        )
    raise exc  # the job is retried and resumes from the staging area
