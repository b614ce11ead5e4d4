"""What a connection's tokens tell operators: lifecycle log lines and metrics, one call per step.

Ids and kinds only: never a token, a scope's grant or anything about the patient.
"""

from __future__ import annotations

from ehiconnect import metrics
from ehiconnect.db.models import OrgConnection
from ehiconnect.lifecycle import LifecycleEvent, log_event


def _ids(connection: OrgConnection) -> dict[str, object]:
    return {
        "org_id": connection.org_id,
        "org_connection_id": connection.org_connection_id,
        "platform_type": connection.platform_type,
        "api_mode": connection.api_mode,
    }


def token_refreshed(connection: OrgConnection, *, rotated: bool) -> None:
    metrics.token_refresh("refreshed")
    log_event(LifecycleEvent.TOKEN_REFRESHED, **_ids(connection), rotated=rotated)


def token_refresh_failed(connection: OrgConnection, *, refused: bool, error: str) -> None:
    """`refused`: the health system refused the refresh token (the patient must reconnect);
    otherwise it could not be reached or answered an error (retried later). `error` is the
    exception's type name, never its text."""
    metrics.token_refresh("refused" if refused else "failed")
    log_event(
        LifecycleEvent.TOKEN_REFRESH_FAILED,
        **_ids(connection),
        failure_reason="refresh_refused" if refused else "refresh_error",
        error=error,
    )


def connection_revoked(connection: OrgConnection, reason: str) -> None:
    log_event(LifecycleEvent.CONNECTION_REVOKED, **_ids(connection), reason=reason)
