"""Webhook intake: decide whether a received webhook is genuine, then record it once.

The decision is pure (`check_webhook`): a Standard Webhooks signature made with one of the
configured secrets, a timestamp within the tolerance (an old, replayed message fails here), and a
JSON envelope with `type` and `data`. A genuine webhook is accepted even when its JSON carries
`\\u0000`, which PostgreSQL cannot store: each NUL becomes U+FFFD (see `nul_text`), because
refusing an authentic message would only make the platform redeliver it until it gives up, and
drop the event it reports. Recording (`record_webhook`) keys on `webhook-id`, so a
redelivered message is acknowledged and not processed twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.signing import SignatureError, verify
from ehiconnect.tracker.models import TrackerWebhook
from ehiconnect.tracker.nul_text import replace_nul_escapes


@dataclass(frozen=True)
class Accepted:
    webhook_id: str
    envelope: dict[str, Any]
    nul_replaced: int = 0
    """How many NUL characters of the body were stored as U+FFFD."""


@dataclass(frozen=True)
class Rejected:
    status: int
    code: str
    description: str


def check_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: int,
    tolerance_seconds: int,
) -> Accepted | Rejected:
    if not secrets:
        return Rejected(
            503,
            "not_configured",
            "the tracker has no webhook secret; set tracker.webhook_secrets to the endpoint's "
            "whsec_… secret",
        )
    problem = "no secret configured"
    for secret in secrets:
        try:
            verify(body, headers, secret, now=now, tolerance_seconds=tolerance_seconds)
        except SignatureError as exc:
            problem = str(exc)
            continue
        break
    else:
        return Rejected(401, "invalid_signature", problem)
    storable, nul_replaced = replace_nul_escapes(body)
    try:
        envelope = orjson.loads(storable)
    except orjson.JSONDecodeError:
        return Rejected(400, "invalid_body", "the webhook body is not JSON")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("type"), str):
        return Rejected(400, "invalid_body", "the webhook body has no `type`")
    if not isinstance(envelope.get("data"), dict | list):
        return Rejected(400, "invalid_body", "the webhook body has no `data`")
    webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
    return Accepted(webhook_id=webhook_id, envelope=envelope, nul_replaced=nul_replaced)


async def record_webhook(session: AsyncSession, accepted: Accepted, now: dt.datetime) -> bool:
    """Store the webhook; False when this webhook-id was received before."""
    data = accepted.envelope.get("data")
    fields = data if isinstance(data, dict) else {}
    result = await session.execute(
        insert(TrackerWebhook)
        .values(
            webhook_id=accepted.webhook_id,
            event_type=accepted.envelope["type"],
            org_connection_id=_text(fields.get("org_connection_id")),
            task_id=_text(fields.get("task_id")),
            payload=accepted.envelope,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["webhook_id"])
        .returning(TrackerWebhook.webhook_id)
    )
    return result.scalar_one_or_none() is not None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
