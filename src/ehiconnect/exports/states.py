"""Export task states and the views the API gives of them (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ehiconnect.exports.models import ExportTask
from ehiconnect.vocabulary import ExportStatus

# A task the customer cancelled (while pending) or deleted (once finished, `DELETE` on its Bulk
# Data status URL) is gone: the Bulk Data view answers 404 for it, as for an unknown task.
REMOVED = frozenset({ExportStatus.CANCELLED, ExportStatus.DELETED})


def reusable(task: ExportTask, now: dt.datetime) -> bool:
    """A new request for the connection gets this task back (idempotency, DESIGN §1)."""
    if task.status == ExportStatus.PENDING:
        return True
    return (
        task.status == ExportStatus.SUCCESS
        and task.expires_at is not None
        and task.expires_at > now
    )


def status_view(task: ExportTask) -> dict[str, Any]:
    view: dict[str, Any] = {
        "task_id": task.task_id,
        "status": task.status,
        "org_connection_id": task.org_connection_id,
        "progress": {"phase": task.phase, **task.progress},
        "created_at": task.created_at.isoformat(),
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
    }
    if task.status == ExportStatus.FAILED:
        view["failure_reason"] = task.failure_reason
        view["failure_description"] = task.failure_description
    if task.status == ExportStatus.SUCCESS:
        view["stats"] = task.stats
        view["expires_at"] = task.expires_at.isoformat() if task.expires_at else None
        view["files"] = [{"file_id": task.file_id, "size": task.file_size, "sha256": task.sha256}]
    return view
