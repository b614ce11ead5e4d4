"""The consent log (append-only) and the short-lived cache of widget hand-offs.

The customer's frontend forwards the widget's `widget.complete` (data: the connected accounts) or
`patient.connection_success` (data: one account) event, as the widget emitted it:
`{"api_mode", "event_type", "data"}`, optionally with `external_id` and `date` beside them. The
same event forwarded twice (a retry, a double click, a replay) is acknowledged and not recorded
again: the cache key is the sha256 of the event's canonical JSON. An event holding a NUL character
(`\\u0000`, which PostgreSQL cannot store) is refused, naming the field: the caller forwarding
it can fix it, and a consent record should say exactly what the widget said.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.tracker.models import TrackerConsent, TrackerWidgetEvent
from ehiconnect.tracker.nul_text import nul_path
from ehiconnect.vocabulary import EventType

WIDGET_EVENT_TYPES = ("widget.complete", EventType.CONNECTION_SUCCESS)


class InvalidWidgetEvent(ValueError):
    """The forwarded payload is not a widget event the tracker records."""


@dataclass(frozen=True)
class ConsentArtifact:
    org_connection_id: str
    brand_id: str | None = None
    portal_id: str | None = None
    endpoint_id: str | None = None
    external_id: str | None = None
    scope: str | None = None
    api_mode: str | None = None
    connection_status: str | None = None
    platform_type: str | None = None


@dataclass(frozen=True)
class WidgetEvent:
    event_type: str
    api_mode: str | None
    event_at: dt.datetime | None
    accounts: tuple[ConsentArtifact, ...]
    key: str


def parse_widget_event(payload: Any) -> WidgetEvent:
    """Read a forwarded widget event; InvalidWidgetEvent says what is wrong with it."""
    if not isinstance(payload, dict):
        raise InvalidWidgetEvent("send the widget event as a JSON object")
    event_type = payload.get("event_type")
    if event_type not in WIDGET_EVENT_TYPES:
        raise InvalidWidgetEvent(
            f"event_type must be one of {', '.join(WIDGET_EVENT_TYPES)}; got {event_type!r}"
        )
    data = payload.get("data")
    if isinstance(data, str):  # the widget's CustomEvent carries `detail.data` as a JSON string
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidWidgetEvent(f"data is a string but not JSON: {exc}") from exc
        _refuse_nul(data, "data")
    _refuse_nul(payload, "")
    items = data if isinstance(data, list) else [data]
    api_mode = payload.get("api_mode")
    external_id = payload.get("external_id")
    accounts = tuple(_artifact(item, api_mode, external_id) for item in items)
    if not accounts:
        raise InvalidWidgetEvent(f"{event_type} carries no connected account")
    return WidgetEvent(
        event_type=str(event_type),
        api_mode=api_mode if isinstance(api_mode, str) else None,
        event_at=_parse_time(payload.get("date") or payload.get("timestamp")),
        accounts=accounts,
        key=hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest(),
    )


def _refuse_nul(value: Any, prefix: str) -> None:
    where = nul_path(value)
    if where is None:
        return
    if prefix and where.startswith("$"):  # the decoded value itself, or one of its items
        where = prefix + where.removeprefix("$")
    elif prefix:
        where = f"{prefix}.{where}"
    raise InvalidWidgetEvent(
        f"{where} contains a NUL character (\\u0000), which cannot be stored; remove it and resend"
    )


def _artifact(item: Any, api_mode: Any, external_id: Any) -> ConsentArtifact:
    if not isinstance(item, dict) or not isinstance(item.get("org_connection_id"), str):
        raise InvalidWidgetEvent("each connected account needs an org_connection_id string")
    defaults = {"api_mode": api_mode, "external_id": external_id}  # the event's, for each account
    return artifact_of(item, item["org_connection_id"], defaults)


def artifact_of(
    fields: Mapping[str, Any], org_connection_id: str, defaults: Mapping[str, Any] | None = None
) -> ConsentArtifact:
    """A consent artifact from an account's fields as an event carries them (a widget event's
    account, a connection webhook's data): a field that is missing takes its default, one that
    is not a string is left empty."""

    def text(name: str) -> str | None:
        value = fields.get(name, (defaults or {}).get(name))
        return value if isinstance(value, str) else None

    return ConsentArtifact(
        org_connection_id=org_connection_id,
        brand_id=text("brand_id"),
        portal_id=text("portal_id"),
        endpoint_id=text("endpoint_id"),
        external_id=text("external_id"),
        scope=text("scope"),
        api_mode=text("api_mode"),
        connection_status=text("connection_status"),
        platform_type=text("platform_type"),
    )


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None  # unreadable, like an unparsable string
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


async def remember_widget_event(
    session: AsyncSession, event: WidgetEvent, payload: dict[str, Any], now: dt.datetime, ttl: float
) -> bool:
    """Cache the event; False when the same event is already cached (a replay)."""
    inserted = await session.execute(
        insert(TrackerWidgetEvent)
        .values(
            event_key=event.key,
            event_type=event.event_type,
            org_connection_ids=[a.org_connection_id for a in event.accounts],
            payload=payload,
            received_at=now,
            expires_at=now + dt.timedelta(hours=ttl),
        )
        .on_conflict_do_nothing(index_elements=["event_key"])
        .returning(TrackerWidgetEvent.event_key)
    )
    return inserted.scalar_one_or_none() is not None


def append_consent(
    session: AsyncSession,
    artifact: ConsentArtifact,
    *,
    kind: str,
    event_type: str,
    now: dt.datetime,
    event_at: dt.datetime | None = None,
) -> None:
    session.add(
        TrackerConsent(
            kind=kind,
            event_type=event_type,
            org_connection_id=artifact.org_connection_id,
            brand_id=artifact.brand_id,
            portal_id=artifact.portal_id,
            endpoint_id=artifact.endpoint_id,
            external_id=artifact.external_id,
            scope=artifact.scope,
            api_mode=artifact.api_mode,
            connection_status=artifact.connection_status,
            platform_type=artifact.platform_type,
            event_at=event_at,
            received_at=now,
        )
    )


async def purge_widget_cache(session: AsyncSession, now: dt.datetime) -> int:
    result = await session.execute(
        delete(TrackerWidgetEvent).where(TrackerWidgetEvent.expires_at <= now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
