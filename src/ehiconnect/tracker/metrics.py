"""The tracker's Prometheus metrics, on its own registry (`ehiconnect tracker serve
--metrics-port`): jobs by state, read from the ledger at scrape time, and step failures."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, ProcessCollector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.database import Database
from ehiconnect.lifecycle import LifecycleEvent, log_event
from ehiconnect.scrape import GaugeSpec, MetricsServer, Sample, ScrapeTimeGauges, exposed_metrics
from ehiconnect.tracker.models import TrackerJob

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

STEP_FAILURES = Counter(
    "ehiconnect_tracker_step_failures",
    "Tracker jobs that failed for good, by the step that failed and the reason",
    ["step", "reason"],
    registry=REGISTRY,
)

_JOBS_NAME = "ehiconnect_tracker_jobs"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


def step_failed(job: TrackerJob, step: str, reason: str) -> None:
    """A job failed for good at `step`: counted, and logged with its ids."""
    label = reason if _CODE.fullmatch(reason) else "other"  # codes only: the label set stays small
    STEP_FAILURES.labels(step, label).inc()
    log_event(
        LifecycleEvent.TRACKER_STEP_FAILED,
        job_id=job.job_id,
        org_connection_id=job.org_connection_id,
        task_id=job.task_id,
        step=step,
        failure_reason=label,
    )


async def _jobs_by_state(session: AsyncSession) -> list[Sample]:
    rows = await session.execute(select(TrackerJob.state, func.count()).group_by(TrackerJob.state))
    return [(_JOBS_NAME, (str(state),), float(count)) for state, count in rows.all()]


JOB_GAUGES = ScrapeTimeGauges(
    (GaugeSpec(_JOBS_NAME, "Tracker jobs in the ledger by state", ("state",)),),
    _jobs_by_state,
    max_age_seconds=5.0,
)
REGISTRY.register(JOB_GAUGES)


@contextlib.asynccontextmanager
async def exposed(
    database: Database, *, host: str, port: int | None
) -> AsyncIterator[MetricsServer | None]:
    """The tracker's /metrics on host:port while the block runs (nothing when port is None)."""
    async with exposed_metrics(REGISTRY, JOB_GAUGES, database, host=host, port=port) as server:
        yield server
