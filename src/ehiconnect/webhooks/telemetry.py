"""What webhook delivery tells operators: metrics for every attempt, lifecycle log lines for
failed attempts and disabled endpoints. Called once a pass's results are committed.

The lines carry ids (event, endpoint, delivery, and the export's task and connection when the
event is about one), the status and outcome: never the body, the URL or the receiver's reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ehiconnect import metrics
from ehiconnect.lifecycle import LifecycleEvent, log_event
from ehiconnect.webhooks.models import DELIVERY_FAILED
from ehiconnect.webhooks.schedule import AttemptOutcome

if TYPE_CHECKING:
    from ehiconnect.webhooks.claims import AttemptResult


def pass_recorded(
    results: Sequence[AttemptResult],
    next_states: Sequence[dict[str, Any]],
    disabled: Sequence[tuple[str, str, str]],
) -> None:
    """`next_states[i]` is the recorded state of `results[i]`'s delivery; `disabled` holds
    (endpoint_id, org_id, why) of each endpoint the pass disabled."""
    for result, state in zip(results, next_states, strict=True):
        delivery = result.delivery
        outcome = result.outcome
        delivered_after = None
        if outcome is AttemptOutcome.SUCCEEDED and delivery.event_created_at is not None:
            answered = result.attempted_at.timestamp() + result.latency_ms / 1000
            delivered_after = answered - delivery.event_created_at.timestamp()
        metrics.webhook_attempt(
            outcome.value,
            result.status_code,
            delivered_after_seconds=delivered_after,
            event_type=delivery.event_type,
        )
        if outcome is not AttemptOutcome.SUCCEEDED:
            log_event(
                LifecycleEvent.WEBHOOK_ATTEMPT_FAILED,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                endpoint_id=delivery.endpoint_id,
                delivery_id=delivery.delivery_id,
                attempt=delivery.attempt_number,
                status=result.status_code,
                outcome=outcome.value,
                given_up=state.get("b_status") == DELIVERY_FAILED,
                task_id=_id_in(delivery.data, "task_id"),
                org_connection_id=_id_in(delivery.data, "org_connection_id"),
                api_mode=delivery.api_mode,
                latency_ms=result.latency_ms,
            )
    for endpoint_id, org_id, why in disabled:
        metrics.webhook_endpoint_disabled(why)
        log_event(
            LifecycleEvent.WEBHOOK_ENDPOINT_DISABLED,
            endpoint_id=endpoint_id,
            org_id=org_id,
            reason=why,
        )


def _id_in(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None
