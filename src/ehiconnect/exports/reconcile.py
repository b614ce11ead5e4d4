"""Keep one truth for every export task: its row, not whatever happened to its job.

A periodic job (`exports:reconcile`, every 15 s by default) looks at every pending task and the
job that should drive it (`export_tasks.job_id`), and lets `reconcile_plan.judge` decide: leave it
to a live job, queue a new job (the crawl resumes from the staging area), or end the task with a
reason and the `patient.ehi_export_failed` event. It also removes the staging rows and blobs of
tasks that already ended (a cancelled or timed-out crawl may have written after its end). Every
step is idempotent and takes row locks with SKIP LOCKED, so any number of workers may run it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

import procrastinate.exceptions
from sqlalchemy import text

from ehiconnect.exports import telemetry
from ehiconnect.exports.audit_trail import record_task_action
from ehiconnect.exports.endings import discard_ended_staging, fail_task
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.ports import ExportPorts
from ehiconnect.exports.reconcile_plan import JobState, PendingTask, Verdict, judge
from ehiconnect.exports.runner import MAX_FAILURES
from ehiconnect.exports.service import enqueue_run
from ehiconnect.vocabulary import ExportFailureReason, ExportStatus

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    pending: int = 0
    requeued: int = 0
    timed_out: int = 0
    exhausted: int = 0
    staging_cleared: int = 0

    def as_json(self) -> dict[str, int]:
        return asdict(self)


_PENDING = text(
    """
    SELECT t.task_id, t.deadline_at, t.failures, coalesce(j.status::text, 'missing')
    FROM export_tasks t
    LEFT JOIN procrastinate_jobs j ON j.id = t.job_id
    WHERE t.status = :pending
    ORDER BY t.created_at
    LIMIT :limit
    """
)

_JOB_STATE = text(
    "SELECT coalesce((SELECT status::text FROM procrastinate_jobs WHERE id = :job_id), 'missing')"
)

# Tasks that ended recently enough to matter and still own staging rows. Staging tables are keyed
# by task_id first, so each EXISTS is an index probe.
_ENDED_WITH_STAGING = text(
    """
    SELECT t.task_id FROM export_tasks t
    WHERE t.status <> :pending AND t.created_at >= :since
      AND (EXISTS (SELECT 1 FROM export_items s WHERE s.task_id = t.task_id)
        OR EXISTS (SELECT 1 FROM export_attachments s WHERE s.task_id = t.task_id)
        OR EXISTS (SELECT 1 FROM export_steps s WHERE s.task_id = t.task_id)
        OR EXISTS (SELECT 1 FROM export_errors s WHERE s.task_id = t.task_id))
    LIMIT :limit
    """
)


async def reconcile_exports(ports: ExportPorts, *, limit: int = 500) -> ReconcileReport:
    """One pass over pending tasks and ended tasks' leftovers; what it did."""
    now = ports.clock.now()
    async with ports.database.transaction() as session:
        rows = (
            await session.execute(_PENDING, {"limit": limit, "pending": ExportStatus.PENDING})
        ).all()
    report = ReconcileReport(pending=len(rows))
    for task_id, deadline_at, failures, job_state in rows:
        task = PendingTask(task_id, deadline_at, failures, JobState(job_state))
        verdict = judge(task, now=now, max_failures=MAX_FAILURES)
        if verdict is Verdict.KEEP:
            continue
        if verdict is Verdict.FAIL_TIMEOUT:
            minutes = ports.settings.deadline_minutes
            if await fail_task(
                ports,
                task_id,
                ExportFailureReason.TIMEOUT,
                f"the export did not finish within {minutes:g} minutes; request a new export",
            ):
                report.timed_out += 1
        elif verdict is Verdict.FAIL_EXHAUSTED:
            if await fail_task(
                ports,
                task_id,
                ExportFailureReason.SUPPRESSED_PLEASE_CONTACT,
                "the export failed repeatedly; contact the platform operator",
            ):
                report.exhausted += 1
        elif await _requeue(ports, task):
            report.requeued += 1
    report.staging_cleared = await _clear_ended_staging(ports, now, limit)
    if report.requeued or report.timed_out or report.exhausted or report.staging_cleared:
        log.info("exports reconciled", extra=report.as_json())
    return report


async def _requeue(ports: ExportPorts, seen: PendingTask) -> bool:
    """Queue a new job for a task whose job ended, unless something changed since we looked."""
    async with ports.database.transaction() as session:
        task = await session.get(ExportTask, seen.task_id, with_for_update={"skip_locked": True})
        if task is None or task.status != ExportStatus.PENDING:
            return False
        state = await session.scalar(_JOB_STATE, {"job_id": task.job_id})
        if JobState(state) != seen.job_state:
            return False
        try:
            async with session.begin_nested():  # a refused defer must not abort the transaction
                task.job_id = await enqueue_run(session, ports.jobs, task.task_id)
        except procrastinate.exceptions.AlreadyEnqueued:
            return False  # a job for it is already waiting
        await record_task_action(
            session,
            ports.clock,
            task,
            "export.requeued",
            detail={"previous_job_state": seen.job_state.value, "failures": task.failures},
        )
    log.warning(
        "export job ended with its task still pending; queued a new job",
        extra={"task_id": seen.task_id, "job_state": seen.job_state.value},
    )
    telemetry.export_requeued(task, seen.job_state.value)
    return True


async def _clear_ended_staging(ports: ExportPorts, now: dt.datetime, limit: int) -> int:
    settings = ports.settings
    since = now - dt.timedelta(minutes=settings.deadline_minutes, hours=settings.retention_hours)
    async with ports.database.transaction() as session:
        ended = list(
            await session.scalars(
                _ENDED_WITH_STAGING,
                {"since": since, "limit": limit, "pending": ExportStatus.PENDING},
            )
        )
    cleared = 0
    for task_id in ended:  # one that fails is logged and tried again at the next pass
        cleared += await discard_ended_staging(ports.database, ports.blobs, task_id)
    return cleared
