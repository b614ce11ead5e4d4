"""Lifecycle events: one INFO log line per thing an operator may need to follow or count.

    log_event(LifecycleEvent.EXPORT_FAILED, task_id=..., org_id=..., failure_reason=...)

writes, in the `json` log format, one line whose `event` key is the event's name and whose other
keys are the ones given (None values are left out): ids (`task_id`, `org_id`,
`org_connection_id`, `endpoint_id`), kinds (`platform_type`, `api_mode`, `phase`,
`failure_reason`), counts and sizes (`resources`, `bytes`, `duration_ms`). Never a token, a
secret or patient data: the redacting filter still sees every line. The logger is
`ehiconnect.lifecycle`, so an operator can route or silence these lines on their own.
docs/operations.md lists every event with its keys.
"""

from __future__ import annotations

import logging
from enum import StrEnum

log = logging.getLogger("ehiconnect.lifecycle")


class LifecycleEvent(StrEnum):
    EXPORT_REQUESTED = "export.requested"
    EXPORT_STARTED = "export.started"
    EXPORT_PHASE_CHANGED = "export.phase_changed"
    EXPORT_SUCCEEDED = "export.succeeded"
    EXPORT_FAILED = "export.failed"
    EXPORT_CANCELLED = "export.cancelled"
    EXPORT_PURGED = "export.purged"
    EXPORT_REQUEUED = "export.requeued"
    TOKEN_REFRESHED = "token.refreshed"  # noqa: S105 (an event name, not a secret)
    TOKEN_REFRESH_FAILED = "token.refresh_failed"  # noqa: S105 (an event name)
    CONNECTION_REVOKED = "connection.revoked"
    WEBHOOK_ATTEMPT_FAILED = "webhook.attempt_failed"
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled"
    CONSENT_STARTED = "consent.started"
    CONSENT_COMPLETED = "consent.completed"
    CONSENT_FAILED = "consent.failed"
    JOB_STALLED_RECOVERED = "job.stalled_recovered"
    TRACKER_STEP_FAILED = "tracker.step_failed"


def log_event(event: LifecycleEvent, /, **fields: object) -> None:
    """Write the event's line (at INFO; dropped cheaply when the level is higher)."""
    if not log.isEnabledFor(logging.INFO):
        return
    extra: dict[str, object] = {"event": event.value}
    extra.update((key, value) for key, value in fields.items() if value is not None)
    log.info(event.value, extra=extra)
