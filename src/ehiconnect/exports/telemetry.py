"""What an export's life tells operators: its lifecycle log lines and metrics, one call per step.

Called after the state change is committed (or with the row that records it), never with
anything but ids, kinds and counts.
"""

from __future__ import annotations

from ehiconnect import metrics
from ehiconnect.exports.models import ExportTask
from ehiconnect.lifecycle import LifecycleEvent, log_event
from ehiconnect.vocabulary import ExportStatus

_ENDED: dict[str, LifecycleEvent] = {
    ExportStatus.SUCCESS: LifecycleEvent.EXPORT_SUCCEEDED,
    ExportStatus.FAILED: LifecycleEvent.EXPORT_FAILED,
    ExportStatus.CANCELLED: LifecycleEvent.EXPORT_CANCELLED,
}


def _ids(task: ExportTask) -> dict[str, object]:
    return {
        "task_id": task.task_id,
        "org_id": task.org_id,
        "org_connection_id": task.org_connection_id,
        "api_mode": task.api_mode,
    }


def export_requested(task: ExportTask, platform_type: str) -> None:
    metrics.export_requested(platform_type, task.api_mode)
    log_event(LifecycleEvent.EXPORT_REQUESTED, **_ids(task), platform_type=platform_type)


def export_started(task: ExportTask, platform_type: str) -> None:
    """A run began; the export counts as started at its first run only."""
    if task.runs == 1:
        metrics.export_started(platform_type, task.api_mode)
    log_event(
        LifecycleEvent.EXPORT_STARTED, **_ids(task), platform_type=platform_type, run=task.runs
    )


def phase_changed(task: ExportTask, phase: str) -> None:
    log_event(LifecycleEvent.EXPORT_PHASE_CHANGED, **_ids(task), phase=phase)


def export_ended(task: ExportTask, platform_type: str) -> None:
    """The task reached success, failed or cancelled (its row as committed)."""
    event = _ENDED.get(task.status)
    if event is None:
        return
    began = task.started_at or task.created_at
    seconds = (task.completed_at - began).total_seconds() if task.completed_at else None
    succeeded = task.status == ExportStatus.SUCCESS
    failed = task.status == ExportStatus.FAILED
    resources = int(task.stats.get("total_resources", 0)) if succeeded and task.stats else None
    metrics.export_finished(
        platform_type,
        task.api_mode,
        task.status,
        failure_reason=task.failure_reason or "" if failed else "",
        duration_seconds=seconds if task.started_at else None,
        size_bytes=task.file_size if succeeded else None,
        resources=resources,
    )
    log_event(
        event,
        **_ids(task),
        platform_type=platform_type,
        failure_reason=task.failure_reason if failed else None,
        duration_ms=round(seconds * 1000) if seconds is not None else None,
        resources=resources,
        bytes=task.file_size if succeeded else None,
        errors=task.error_count if succeeded else None,
    )


def export_requeued(task: ExportTask, previous_job_state: str) -> None:
    metrics.exports_requeued()
    log_event(LifecycleEvent.EXPORT_REQUEUED, **_ids(task), job_state=previous_job_state)


def export_purged(task: ExportTask) -> None:
    metrics.exports_purged(1)
    log_event(LifecycleEvent.EXPORT_PURGED, **_ids(task))
