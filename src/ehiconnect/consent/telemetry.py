"""What consent flows tell operators: lifecycle log lines and metrics, one call per step.

Ids and kinds only: never the OAuth state, code or verifier, nor the patient's identity.
"""

from __future__ import annotations

from ehiconnect import metrics
from ehiconnect.consent.models import ConsentFlow
from ehiconnect.lifecycle import LifecycleEvent, log_event


def _ids(flow: ConsentFlow) -> dict[str, object]:
    return {"org_id": flow.org_id, "endpoint_id": flow.endpoint_id, "api_mode": flow.api_mode}


def consent_started(org_id: str, endpoint_id: str, api_mode: str, *, reconnect: bool) -> None:
    metrics.consent_started(api_mode)
    log_event(
        LifecycleEvent.CONSENT_STARTED,
        org_id=org_id,
        endpoint_id=endpoint_id,
        api_mode=api_mode,
        reconnect=reconnect,
    )


def consent_completed(flow: ConsentFlow, org_connection_id: str, platform_type: str) -> None:
    metrics.consent_completed(platform_type, flow.api_mode)
    log_event(
        LifecycleEvent.CONSENT_COMPLETED,
        **_ids(flow),
        org_connection_id=org_connection_id,
        platform_type=platform_type,
    )


def consent_failed(flow: ConsentFlow | None, error: str) -> None:
    """`error` may be a health system's free-text OAuth error: it is reduced to a known reason."""
    reason = metrics.consent_failure_reason(error)
    metrics.consent_failed(reason)
    log_event(
        LifecycleEvent.CONSENT_FAILED,
        **(_ids(flow) if flow is not None else {}),
        failure_reason=reason,
    )
