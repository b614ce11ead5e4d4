"""What a finished sign-in tells the widget, and who may read it with a result handle (pure).

The widget learns a flow's result in one of two ways. Normally the callback page posts it to
`window.opener`. When a health system's portal sends `Cross-Origin-Opener-Policy: same-origin`
the popup loses its opener, so the widget also holds a **result handle**: 32 random bytes
(base64url, 43 characters) it makes itself and never shows anyone but the platform's
`POST /v1/bridge/connect/result`. `/bridge/connect` only ever sees the handle's challenge,
`BASE64URL(SHA-256(handle))` (PKCE's S256 applied to the handle), and the flow stores the hex
SHA-256, so neither the popup's URL nor the database holds anything that reads the result.

`read_outcome` decides what one read of a handle gets: the result once, `pending` before it
exists, or an error that says why not (used, expired, another origin).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from ehiconnect.errors import ApiError, Forbidden, Gone, InvalidRequest, NotFound
from ehiconnect.orgs.validation import normalize_origin

SUCCESS_FIELDS: Final = (
    "org_connection_id",
    "connection_status",
    "platform_type",
    "brand_id",
    "portal_id",
    "endpoint_id",
    "api_mode",
)
FAILURE_FIELDS: Final = ("error", "error_description")

RESULT_KEPT_AFTER_FINISH: Final = dt.timedelta(minutes=2)
"""A result finished near the end of its flow stays readable at least this long."""

_BASE64URL_43: Final = re.compile(r"[A-Za-z0-9_-]{43}")


def success_result(
    *,
    org_connection_id: str,
    connection_status: str,
    platform_type: str,
    brand_id: str | None,
    portal_id: str | None,
    endpoint_id: str | None,
    api_mode: str,
) -> dict[str, object]:
    """The payload for a connection that was created or re-authorized."""
    return {
        "status": "success",
        "org_connection_id": org_connection_id,
        "connection_status": connection_status,
        "platform_type": platform_type,
        "brand_id": brand_id,
        "portal_id": portal_id,
        "endpoint_id": endpoint_id,
        "api_mode": api_mode,
    }


def connection_result(view: dict[str, Any]) -> dict[str, object]:
    """The success payload of a connection, from its `connection_view`."""
    return success_result(
        org_connection_id=view["org_connection_id"],
        connection_status=view["status"],
        platform_type=view["platform_type"],
        brand_id=view["catalog_brand_id"],
        portal_id=view["catalog_portal_id"],
        endpoint_id=view["catalog_endpoint_id"],
        api_mode=view["api_mode"],
    )


def failure_result(error: str, error_description: str) -> dict[str, object]:
    """The payload for a sign-in that did not produce a connection (denied, expired, failed)."""
    return {"status": "failed", "error": error, "error_description": error_description}


def checked_result(result: dict[str, object]) -> dict[str, object]:
    """`result` with only the fields its status carries; ValueError when one is missing."""
    status = result.get("status")
    if status == "success":
        fields: tuple[str, ...] = SUCCESS_FIELDS
    elif status == "failed":
        fields = FAILURE_FIELDS
    else:
        raise ValueError(f"result status must be 'success' or 'failed', not {status!r}")
    missing = [name for name in fields if name not in result]
    if missing:
        raise ValueError(f"a {status} result needs {', '.join(missing)}")
    return {"status": status, **{name: result[name] for name in fields}}


def _base64url_32_bytes(value: str) -> bytes | None:
    if not _BASE64URL_43.fullmatch(value):
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=")
    except (binascii.Error, ValueError):
        return None
    # 43 characters carry 258 bits; a canonical encoding leaves the last 2 at zero.
    return raw if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == value else None


def challenge_hash(result_challenge: str) -> str:
    """The hex SHA-256 a flow stores, from the base64url challenge `/bridge/connect` receives."""
    digest = _base64url_32_bytes(result_challenge)
    if digest is None:
        raise InvalidRequest(
            "result_challenge must be BASE64URL(SHA-256(result_handle)) without padding "
            "(43 characters)"
        )
    return digest.hex()


def handle_hash(result_handle: str) -> str:
    """The hex SHA-256 of a handle: what `challenge_hash` gave for its challenge."""
    if _base64url_32_bytes(result_handle) is None:
        raise InvalidRequest(
            "result_handle must be the 43 base64url characters (32 random bytes) whose "
            "challenge was sent to /bridge/connect"
        )
    return hashlib.sha256(result_handle.encode("ascii")).hexdigest()


def same_origin(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return normalize_origin(a) == normalize_origin(b)
    except ApiError:
        return False


@dataclass(frozen=True)
class HandleState:
    """What a read needs of the flow a handle belongs to."""

    widget_origin: str | None
    expires_at: dt.datetime
    result: dict[str, Any] | None
    finished_at: dt.datetime | None
    read_at: dt.datetime | None


@dataclass(frozen=True)
class Pending:
    """No result yet; the flow can still finish for `expires_in` seconds."""

    expires_in: int

    def as_data(self) -> dict[str, object]:
        return {"status": "pending", "expires_in": self.expires_in}


@dataclass(frozen=True)
class Ready:
    """The result, to hand over now and never again."""

    result: dict[str, object]


def readable_until(state: HandleState, keep_after_finish: dt.timedelta) -> dt.datetime:
    if state.finished_at is None:
        return state.expires_at
    return max(state.expires_at, state.finished_at + keep_after_finish)


def read_outcome(
    state: HandleState,
    *,
    origin: str,
    now: dt.datetime,
    keep_after_finish: dt.timedelta = RESULT_KEPT_AFTER_FINISH,
) -> Pending | Ready:
    """What one read of a handle gets. Raises the error to answer instead; an error never uses
    the handle up, a `Ready` does (the caller records `read_at`)."""
    if state.widget_origin is not None and not same_origin(origin, state.widget_origin):
        raise Forbidden(
            "this sign-in was started from a page on another origin; only that page can read "
            "its result",
            code="origin_not_allowed",
        )
    if state.read_at is not None:
        raise Gone(
            "this result handle was already used: a result is handed out once; the "
            "connection itself is in your backend (webhook, GET /v1/bridge/org_connection/{id})",
            code="result_handle_used",
        )
    if now >= readable_until(state, keep_after_finish):
        raise Gone(
            "this sign-in expired before its result was read; start the connection again",
            code="result_expired",
        )
    if state.result is None:
        return Pending(expires_in=max(1, math.ceil((state.expires_at - now).total_seconds())))
    return Ready(checked_result(dict(state.result)))


def unknown_handle() -> NotFound:
    return NotFound(
        "no sign-in of this organization has this result handle; it is only known after "
        "/v1/bridge/connect has answered, for flows started with its result_challenge",
        code="result_handle_unknown",
    )
