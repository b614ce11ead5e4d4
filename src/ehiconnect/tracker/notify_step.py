"""The notify step: once per finished or failed job, on the configured channels."""

from __future__ import annotations

import logging
import smtplib

import httpx

from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.client import PlatformRejected, PlatformUnavailable
from ehiconnect.tracker.export_steps import schedule
from ehiconnect.tracker.ledger import JobState, RetryLater, Step, after_transient_failure
from ehiconnect.tracker.notify import Notice, deliver
from ehiconnect.tracker.runtime import TrackerRuntime

log = logging.getLogger(__name__)


GENERIC_HEALTH_SYSTEM = "your health system"


async def health_system_name(tracker: TrackerRuntime, brand_id: str | None) -> str:
    """The name the patient knows their health system by, from the platform's catalog; a
    generic phrase when the catalog cannot say (never the opaque brand id)."""
    if not brand_id:
        return GENERIC_HEALTH_SYSTEM
    try:
        async with tracker.platform() as platform:
            name = await platform.brand_name(brand_id)
    except (PlatformRejected, PlatformUnavailable) as exc:
        log.warning("health system name unavailable", extra={"error": type(exc).__name__})
        return GENERIC_HEALTH_SYSTEM
    return name or GENERIC_HEALTH_SYSTEM


async def notify(tracker: TrackerRuntime, job_id: str) -> None:
    async with tracker.database.transaction() as session:
        job = await store.lock_job(session, job_id)
        if job.notified_at is not None or job.state not in (JobState.INGESTED, JobState.FAILED):
            return
        notice = Notice(
            outcome="collection_finished"
            if job.state == JobState.INGESTED
            else "collection_failed",
            job_id=job.job_id,
            org_connection_id=job.org_connection_id,
            external_id=job.external_id,
            health_system=await health_system_name(tracker, job.brand_id),
            total_resources=int(job.stats.get("total_resources") or 0),
            failure_reason=job.failure_reason,
        )
        email_to = tracker.settings.notify.email_of_external_id.get(job.external_id or "")
        attempt = store.count_attempt(job, Step.NOTIFY)
        now = tracker.clock.now()
        try:
            used = await deliver(tracker.settings.notify, notice, email_to)
        except (OSError, smtplib.SMTPException, httpx.HTTPError, RuntimeError) as exc:
            await store.log_event(session, job_id, now, Step.NOTIFY, "error", {"error": str(exc)})
            decision = after_transient_failure(attempt, tracker.settings.retry)
            if isinstance(decision, RetryLater):
                await schedule(session, tracker, "notify", decision.delay_seconds, job_id=job_id)
            return
        job.notified_at = now
        await store.log_event(session, job_id, now, Step.NOTIFY, "sent", {"channels": used})
