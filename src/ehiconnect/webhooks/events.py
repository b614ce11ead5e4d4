"""Event types (compat names, DESIGN §2) and the envelope every webhook body carries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ehiconnect.ids import ApiMode
from ehiconnect.vocabulary import EventType

EVENT_TYPES: Final[frozenset[str]] = frozenset(EventType)


def new_event_id() -> str:
    """Event ids are UUIDv4; the same id is the `webhook-id` of every attempt."""
    return str(uuid.uuid4())


def validate_event_types(types: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Check a subscription filter; raise ValueError naming the unknown types."""
    unknown = sorted(set(types) - EVENT_TYPES)
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; "
            f"choose from {', '.join(sorted(EVENT_TYPES))}"
        )
    return tuple(dict.fromkeys(types))


def format_date(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a `Z` suffix, milliseconds."""
    utc = moment.astimezone(dt.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_envelope(
    *,
    event_id: str,
    type: str,
    api_mode: ApiMode,
    data: Mapping[str, Any],
    date: dt.datetime,
) -> dict[str, Any]:
    """The compat envelope `{api_mode, date, id, type, data}`; `date` is the attempt's time."""
    return {
        "api_mode": api_mode,
        "date": format_date(date),
        "id": event_id,
        "type": type,
        "data": dict(data),
    }


def envelope_body(envelope: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return orjson.dumps(envelope)
