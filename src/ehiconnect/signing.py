"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

An endpoint has one secret, or two while a rotation's grace period runs; every active secret signs,
and the header carries the signatures space-separated, so a receiver holding either secret accepts
the message. Compatible with the `standardwebhooks` package in both directions (tested).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Callable, Iterable, Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 5 * 60


class SignatureError(Exception):
    """A webhook could not be verified; the message says which check failed."""


def generate_secret(random_bytes: Callable[[int], bytes] = _secrets.token_bytes) -> str:
    """A new endpoint secret, `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(
            "webhook secret is not base64 after the whsec_ prefix; "
            "use the value the platform issued"
        ) from exc
    if not key:
        raise ValueError("webhook secret is empty; use the value the platform issued")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Iterable[str]) -> str:
    """The `webhook-signature` header value: one `v1,<sig>` per secret, space-separated."""
    signatures = [_signature(secret_key(s), msg_id, timestamp, body) for s in secrets]
    if not signatures:
        raise ValueError(
            "cannot sign without a secret: the endpoint has no active secret the vault can open; "
            "rotate its secret"
        )
    return " ".join(signatures)


def signature_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Iterable[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, secrets),
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check a received webhook; raise SignatureError when it must be rejected.

    `now` is Unix seconds, passed in so callers (and tests on a frozen clock) decide the time.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    header = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and header):
        raise SignatureError(
            "missing webhook-id, webhook-timestamp or webhook-signature header; "
            "the request did not come from a Standard Webhooks sender"
        )
    try:
        timestamp = int(raw_timestamp)
    except ValueError as exc:
        raise SignatureError(f"webhook-timestamp {raw_timestamp!r} is not Unix seconds") from exc
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"webhook-timestamp is {now - timestamp} s away from now, beyond the "
            f"{tolerance_seconds} s tolerance; check the clocks or reject it as a replay"
        )
    expected = _signature(secret_key(secret), msg_id, timestamp, body).encode()
    for candidate in header.split(" "):
        if hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureError("no signature matches this secret; check the endpoint's current secret")
