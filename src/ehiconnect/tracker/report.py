"""What `ehiconnect tracker status` and `failures` show: plain data, grouped by pure functions."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerConsent, TrackerJob, TrackerWebhook

RECENT_JOBS = 20
EXAMPLES_PER_GROUP = 5


@dataclass(frozen=True)
class FailedJob:
    job_id: str
    org_connection_id: str
    health_system: str
    step: str
    reason: str
    description: str
    updated_at: str


@dataclass
class FailureGroup:
    reason: str
    health_system: str
    step: str
    count: int = 0
    job_ids: list[str] = field(default_factory=list)
    description: str = ""


def group_failures(failed: list[FailedJob]) -> list[FailureGroup]:
    """Failures by (reason, health system, step), largest group first, a few job ids each."""
    groups: dict[tuple[str, str, str], FailureGroup] = {}
    for job in failed:
        key = (job.reason, job.health_system, job.step)
        group = groups.setdefault(key, FailureGroup(*key, description=job.description))
        group.count += 1
        if len(group.job_ids) < EXAMPLES_PER_GROUP:
            group.job_ids.append(job.job_id)
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason, g.health_system, g.step))


def by_reason(groups: list[FailureGroup]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for group in groups:
        totals[group.reason] += group.count
    return dict(totals.most_common())


async def failures(session: AsyncSession) -> dict[str, Any]:
    rows = await session.scalars(
        select(TrackerJob)
        .where(TrackerJob.state == JobState.FAILED)
        .order_by(TrackerJob.updated_at)
    )
    failed = [
        FailedJob(
            job_id=job.job_id,
            org_connection_id=job.org_connection_id,
            health_system=job.brand_id or "unknown",
            step=job.failed_step or "unknown",
            reason=job.failure_reason or "unknown",
            description=job.failure_description or "",
            updated_at=job.updated_at.isoformat(),
        )
        for job in rows
    ]
    groups = group_failures(failed)
    return {
        "total": len(failed),
        "by_reason": by_reason(groups),
        "groups": [asdict(g) for g in groups],
    }


async def status(session: AsyncSession) -> dict[str, Any]:
    counted = await session.execute(
        select(TrackerJob.state, func.count()).group_by(TrackerJob.state)
    )
    states = {str(state): int(n) for state, n in counted}
    flagged = await session.scalar(
        select(func.count()).select_from(TrackerWebhook).where(TrackerWebhook.flag.is_not(None))
    )
    flags: dict[str, int] = defaultdict(int)
    for flag, n in await session.execute(
        select(TrackerWebhook.flag, func.count())
        .where(TrackerWebhook.flag.is_not(None))
        .group_by(TrackerWebhook.flag)
    ):
        flags[str(flag)] = int(n)
    consents = await session.scalar(select(func.count()).select_from(TrackerConsent))
    recent = await session.scalars(
        select(TrackerJob).order_by(TrackerJob.updated_at.desc()).limit(RECENT_JOBS)
    )
    return {
        "jobs_by_state": {state.value: states.get(state.value, 0) for state in JobState},
        "consent_log_entries": int(consents or 0),
        "flagged_webhooks": int(flagged or 0),
        "flags": dict(flags),
        "recent_jobs": [
            {
                "job_id": job.job_id,
                "org_connection_id": job.org_connection_id,
                "health_system": job.brand_id,
                "state": str(job.state),
                "task_id": job.task_id,
                "attempts": job.attempts,
                "export_requests": job.export_requests,
                "updated_at": job.updated_at.isoformat(),
            }
            for job in recent
        ],
    }
