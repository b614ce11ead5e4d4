"""Steps before the download: confirm a consent, request the export, read its outcome.

The outcome comes by webhook (`process_webhook`) or, when no webhook arrived in time, by polling
the status endpoint (`watchdog`); both go through `export_succeeded` / `export_failed`, which do
nothing for a job already past that point, so a late webhook after a poll is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.locks import advisory_xact_lock
from ehiconnect.queue.enqueue import enqueue
from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.client import PlatformClient, PlatformRejected, PlatformUnavailable
from ehiconnect.tracker.consent_log import ConsentArtifact, append_consent, artifact_of
from ehiconnect.tracker.ledger import (
    GiveUp,
    JobState,
    RetryLater,
    Step,
    after_export_failure,
    after_transient_failure,
    webhook_flag,
)
from ehiconnect.tracker.models import TrackerJob, TrackerWebhook
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.vocabulary import ConnectionStatus, EventType, ExportStatus

log = logging.getLogger(__name__)

EXPORT_EVENTS = (EventType.EHI_EXPORT_SUCCESS, EventType.EHI_EXPORT_FAILED)
T = TypeVar("T")


async def schedule(
    session: AsyncSession, tracker: TrackerRuntime, task: str, delay: float = 0.0, **kwargs: Any
) -> None:
    """Enqueue a tracker task in the session's transaction, optionally `delay` seconds later."""
    at = tracker.clock.now() + dt.timedelta(seconds=delay) if delay > 0 else None
    job_id = kwargs.get("job_id")
    lock = f"tracker-job-{job_id}" if isinstance(job_id, str) else None
    await enqueue(session, tracker.jobs, f"tracker:{task}", lock=lock, schedule_at=at, **kwargs)


async def retry_or_fail(
    session: AsyncSession, tracker: TrackerRuntime, job: TrackerJob, step: Step, error: Exception
) -> None:
    """After a transient error: the step again after the policy's delay, or the job fails."""
    now = tracker.clock.now()
    decision = after_transient_failure(int(job.attempts.get(step, 0)), tracker.settings.retry)
    await store.log_event(session, job.job_id, now, step, "error", {"error": str(error)[:500]})
    if isinstance(decision, RetryLater):
        await schedule(session, tracker, step.value, decision.delay_seconds, job_id=job.job_id)
        return
    store.fail(job, step, "attempts_exhausted", str(error)[:1000], now)
    await schedule(session, tracker, "notify", job_id=job.job_id)


async def ask_platform(
    session: AsyncSession,
    tracker: TrackerRuntime,
    job: TrackerJob,
    step: Step,
    request: Callable[[PlatformClient], Awaitable[T]],
    *,
    notify_refusal: bool,
) -> T | None:
    """The platform's answer to a step's request, the attempt counted; None when there is none.

    An unreachable platform means the step again after the policy's delay (or the job fails once
    the attempts are spent, and the patient is told); a refusal fails the job with the platform's
    error code, telling the patient when `notify_refusal`.
    """
    store.count_attempt(job, step)
    try:
        async with tracker.platform() as platform:
            return await request(platform)
    except PlatformUnavailable as exc:
        await retry_or_fail(session, tracker, job, step, exc)
    except PlatformRejected as exc:
        store.fail(job, step, exc.code, exc.description, tracker.clock.now())
        if notify_refusal:
            await schedule(session, tracker, "notify", job_id=job.job_id)
    return None


async def confirm_connection(tracker: TrackerRuntime, job_id: str) -> None:
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        if job.state != JobState.CONSENTED:
            return
        connection = await ask_platform(
            session,
            tracker,
            job,
            Step.CONFIRM,
            lambda platform: platform.get_connection(job.org_connection_id),
            notify_refusal=False,  # like a connection found not authorized: no notification
        )
        if connection is None:
            return
        now = tracker.clock.now()
        artifact = ConsentArtifact(
            org_connection_id=connection.org_connection_id,
            brand_id=connection.brand_id,
            portal_id=connection.portal_id,
            endpoint_id=connection.endpoint_id,
            external_id=job.external_id,
            scope=connection.scope,
            api_mode=connection.api_mode,
            connection_status=connection.status,
            platform_type=connection.platform_type,
        )
        append_consent(session, artifact, kind="confirmed", event_type="org_connection", now=now)
        await store.log_event(session, job.job_id, now, Step.CONFIRM, connection.status)
        # `refreshing` is an authorized connection whose token is being renewed (DESIGN §1).
        if connection.status not in (ConnectionStatus.AUTHORIZED, ConnectionStatus.REFRESHING):
            store.fail(
                job,
                Step.CONFIRM,
                "connection_not_authorized",
                f"the platform reports the connection as {connection.status}",
                now,
            )
        elif tracker.settings.auto_export:
            await schedule(session, tracker, Step.EXPORT.value, job_id=job.job_id)


async def launch_export(tracker: TrackerRuntime, job_id: str) -> None:
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        if job.state != JobState.CONSENTED:
            return
        started = await ask_platform(
            session,
            tracker,
            job,
            Step.EXPORT,
            lambda platform: platform.start_export(job.org_connection_id),
            notify_refusal=True,
        )
        if started is None:
            return
        now = tracker.clock.now()
        job.task_id = started.task_id
        job.export_requests += 1
        store.move(job, JobState.EXPORT_REQUESTED, now)
        store.reset_attempts(job, Step.EXPORT)
        await store.log_event(session, job.job_id, now, Step.EXPORT, "requested")


async def process_webhook(tracker: TrackerRuntime, webhook_id: str) -> None:
    async with tracker.database.transaction() as session:
        webhook = await session.get(TrackerWebhook, webhook_id, with_for_update=True)
        if webhook is None or webhook.processed_at is not None:
            return
        now = tracker.clock.now()
        webhook.processed_at = now
        data = webhook.payload.get("data")
        fields: dict[str, Any] = data if isinstance(data, dict) else {}
        if webhook.event_type in EXPORT_EVENTS:
            await _export_event(session, tracker, webhook, fields)
        elif webhook.event_type == EventType.CONNECTION_SUCCESS:
            await consent_received(session, tracker, _artifact(fields), "webhook", now)
        elif webhook.event_type == EventType.AUTHORIZATION_REVOKED:
            artifact = _artifact({**fields, "connection_status": ConnectionStatus.REVOKED})
            append_consent(
                session, artifact, kind="revoked", event_type=webhook.event_type, now=now
            )


async def _export_event(
    session: AsyncSession, tracker: TrackerRuntime, webhook: TrackerWebhook, data: dict[str, Any]
) -> None:
    task_id = data.get("task_id")
    job = await store.job_for_task(session, task_id) if isinstance(task_id, str) else None
    flag = webhook_flag(data, job.task_id if job else None, job.org_connection_id if job else None)
    if flag is not None or job is None:
        webhook.flag = flag
        log.warning(
            "webhook not trusted",
            extra={"webhook_id": webhook.webhook_id, "flag": flag, "type": webhook.event_type},
        )
        return
    if webhook.event_type == EventType.EHI_EXPORT_SUCCESS:
        await export_succeeded(
            session,
            tracker,
            job,
            list(data.get("download_links") or []),
            dict(data.get("stats") or {}),
            "webhook",
        )
    else:
        await export_failed(
            session,
            tracker,
            job,
            str(data.get("failure_reason") or "unknown"),
            str(data.get("failure_description") or ""),
            "webhook",
        )


async def export_succeeded(
    session: AsyncSession,
    tracker: TrackerRuntime,
    job: TrackerJob,
    links: list[dict[str, Any]],
    stats: dict[str, Any],
    source: str,
) -> None:
    now = tracker.clock.now()
    if job.state != JobState.EXPORT_REQUESTED or not store.move(job, JobState.EXPORT_READY, now):
        return
    job.download_links = links
    job.stats = stats
    await store.log_event(session, job.job_id, now, Step.EXPORT, "success", {"via": source})
    await schedule(session, tracker, Step.DOWNLOAD.value, job_id=job.job_id)


async def export_failed(
    session: AsyncSession,
    tracker: TrackerRuntime,
    job: TrackerJob,
    reason: str,
    description: str,
    source: str,
) -> None:
    if job.state != JobState.EXPORT_REQUESTED:
        return
    now = tracker.clock.now()
    detail = {"via": source, "reason": reason}
    await store.log_event(session, job.job_id, now, Step.EXPORT, "failed", detail)
    decision = after_export_failure(reason, job.export_requests, tracker.settings.retry)
    if isinstance(decision, GiveUp):
        store.fail(job, Step.EXPORT, reason, description, now)
        await schedule(session, tracker, "notify", job_id=job.job_id)
        return
    store.move(job, JobState.CONSENTED, now)
    job.task_id = None
    await schedule(session, tracker, Step.EXPORT.value, decision.delay_seconds, job_id=job.job_id)


async def consent_received(
    session: AsyncSession,
    tracker: TrackerRuntime,
    artifact: ConsentArtifact,
    kind: str,
    now: dt.datetime,
    event_type: str = EventType.CONNECTION_SUCCESS,
    event_at: dt.datetime | None = None,
) -> None:
    """Log the consent and, unless the connection already has a job under way, start one."""
    append_consent(session, artifact, kind=kind, event_type=event_type, now=now, event_at=event_at)
    # The widget hand-off and the connection webhook often arrive together: one at a time per
    # connection, so the second finds the first's job instead of starting another.
    await advisory_xact_lock(session, f"tracker-connection:{artifact.org_connection_id}")
    if await store.open_job_for_connection(session, artifact.org_connection_id) is not None:
        return
    job = await store.create_job(
        session,
        now,
        org_connection_id=artifact.org_connection_id,
        external_id=artifact.external_id,
        brand_id=artifact.brand_id,
    )
    await schedule(session, tracker, Step.CONFIRM.value, job_id=job.job_id)


async def watchdog(tracker: TrackerRuntime) -> int:
    """Poll the status of exports whose webhook is overdue; the number of jobs polled."""
    cutoff = tracker.clock.now() - dt.timedelta(minutes=tracker.settings.watchdog_after_minutes)
    async with tracker.database.transaction() as session:
        overdue = list(
            await session.scalars(
                select(TrackerJob.job_id).where(
                    TrackerJob.state == JobState.EXPORT_REQUESTED,
                    TrackerJob.export_requested_at < cutoff,
                    or_(TrackerJob.polled_at.is_(None), TrackerJob.polled_at < cutoff),
                )
            )
        )
    for job_id in overdue:
        await _poll(tracker, job_id)
    return len(overdue)


async def _poll(tracker: TrackerRuntime, job_id: str) -> None:
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        if job.state != JobState.EXPORT_REQUESTED or not job.task_id:
            return
        try:
            async with tracker.platform() as platform:
                status = await platform.export_status(job.task_id)
                links = [
                    {
                        "url": platform.download_url(job.task_id, str(f["file_id"])),
                        "size": f.get("size"),
                        "sha256": f.get("sha256"),
                        "expires_at": status.expires_at,
                    }
                    for f in status.files
                ]
        except (PlatformUnavailable, PlatformRejected) as exc:
            now = tracker.clock.now()
            await store.log_event(
                session, job_id, now, Step.EXPORT, "poll_error", {"error": str(exc)}
            )
            return
        now = tracker.clock.now()
        if status.status == ExportStatus.SUCCESS:
            await export_succeeded(session, tracker, job, links, status.stats, "watchdog")
        elif status.status == ExportStatus.FAILED:
            await export_failed(
                session,
                tracker,
                job,
                status.failure_reason or "unknown",
                status.failure_description or "",
                "watchdog",
            )
        else:
            await store.log_event(session, job_id, now, Step.EXPORT, "still_pending")
            job.polled_at = now  # wait another watchdog period before polling again


def _artifact(fields: dict[str, Any]) -> ConsentArtifact:
    """A connection webhook's data as a consent artifact."""
    return artifact_of(fields, str(fields.get("org_connection_id")))


async def request_export(tracker: TrackerRuntime, org_connection_id: str) -> str:
    """Queue an export for a consented connection (for `auto_export = false`); the job id."""
    async with tracker.database.transaction() as session:
        job = await store.open_job_for_connection(session, org_connection_id)
        if job is None or job.state != JobState.CONSENTED:
            raise store.JobNotFound(
                f"connection {org_connection_id} has no consented job waiting for an export; "
                "see `ehiconnect tracker status`"
            )
        await schedule(session, tracker, Step.EXPORT.value, job_id=job.job_id)
        return job.job_id
