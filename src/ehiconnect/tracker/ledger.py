"""The job ledger's rules, as plain functions over values (no I/O).

A job follows one consent through its steps:

    consented → export_requested → export_ready → downloading → downloaded → ingesting → ingested
                      │                                                       (then notified)
                      └─ export failed: back to consented (a new request) or failed

Every step can end in `failed` once its attempts are spent. Steps are idempotent and delivered at
least once, so a message for a step the job already passed is a no-op, not an error
(`plan_transition` answers None).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ehiconnect.tracker.settings import RetryPolicy


class JobState(StrEnum):
    CONSENTED = "consented"
    EXPORT_REQUESTED = "export_requested"
    EXPORT_READY = "export_ready"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    INGESTING = "ingesting"
    INGESTED = "ingested"
    FAILED = "failed"


class Step(StrEnum):
    CONFIRM = "confirm"
    EXPORT = "export"
    DOWNLOAD = "download"
    INGEST = "ingest"
    NOTIFY = "notify"


ORDER = (
    JobState.CONSENTED,
    JobState.EXPORT_REQUESTED,
    JobState.EXPORT_READY,
    JobState.DOWNLOADING,
    JobState.DOWNLOADED,
    JobState.INGESTING,
    JobState.INGESTED,
)

ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.CONSENTED: frozenset({JobState.EXPORT_REQUESTED, JobState.FAILED}),
    JobState.EXPORT_REQUESTED: frozenset(
        {JobState.EXPORT_READY, JobState.CONSENTED, JobState.FAILED}
    ),
    JobState.EXPORT_READY: frozenset({JobState.DOWNLOADING, JobState.FAILED}),
    # Back to consented when the export's files are gone (links expired): request it again.
    JobState.DOWNLOADING: frozenset({JobState.DOWNLOADED, JobState.CONSENTED, JobState.FAILED}),
    JobState.DOWNLOADED: frozenset({JobState.INGESTING, JobState.FAILED}),
    JobState.INGESTING: frozenset({JobState.INGESTED, JobState.FAILED}),
    JobState.INGESTED: frozenset(),
    JobState.FAILED: frozenset({JobState.CONSENTED}),  # an operator's retry starts over
}


class IllegalTransition(ValueError):
    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(
            f"a job in state {current} cannot move to {target}; "
            "see `ehiconnect tracker status` for where it stands"
        )


def plan_transition(current: JobState, target: JobState) -> JobState | None:
    """`target` when the move is allowed, None when the job already is at or past it.

    Raises IllegalTransition for a move the ledger does not allow (e.g. ingesting a failed job).
    """
    if target in ALLOWED[current]:
        return target
    if current == target:
        return None
    if current in ORDER and target in ORDER and ORDER.index(current) > ORDER.index(target):
        return None
    raise IllegalTransition(current, target)


@dataclass(frozen=True)
class RetryLater:
    delay_seconds: float
    attempt: int


@dataclass(frozen=True)
class GiveUp:
    reason: str


Decision = RetryLater | GiveUp


def after_transient_failure(attempts_so_far: int, policy: RetryPolicy) -> Decision:
    """Try a step again after a delay from the schedule, until the schedule runs out."""
    if attempts_so_far <= len(policy.backoff_seconds):
        delay = policy.backoff_seconds[attempts_so_far - 1] if attempts_so_far > 0 else 0.0
        return RetryLater(delay_seconds=delay, attempt=attempts_so_far + 1)
    return GiveUp(reason="attempts_exhausted")


def after_export_failure(reason: str, export_requests: int, policy: RetryPolicy) -> Decision:
    """Whether a `patient.ehi_export_failed` is worth a new export request, and when."""
    if reason not in policy.retryable_export_reasons:
        return GiveUp(reason=reason)
    if export_requests >= policy.max_export_requests:
        return GiveUp(reason=reason)
    schedule = policy.backoff_seconds or [0.0]
    delay = schedule[min(export_requests - 1, len(schedule) - 1)] if export_requests else 0.0
    return RetryLater(delay_seconds=delay, attempt=export_requests + 1)


def webhook_flag(
    data: dict[str, Any], job_task_id: str | None, job_connection_id: str | None
) -> str | None:
    """Why an export webhook must not be trusted for the job found by its task_id, or None.

    `job_task_id` is None when no job launched that task: such an event is logged and flagged.
    """
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        return "missing_task_id"
    if job_task_id is None:
        return "unknown_task"
    if data.get("org_connection_id") != job_connection_id:
        return "connection_mismatch"
    return None
