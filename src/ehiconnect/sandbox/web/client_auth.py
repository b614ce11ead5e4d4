"""Authenticate the client at the token, introspection and revocation endpoints.

Three methods, chosen by what the request carries:
- `client_secret_basic`: `Authorization: Basic` with the client's id and secret;
- `private_key_jwt`: a `client_assertion` JWT (RS384 or ES384) signed with a key from the
  client's JWKS, `iss` = `sub` = client id, `aud` = the token endpoint URL, `exp` within 5
  minutes, a `jti` never used before;
- `none`: a public client names itself with `client_id` in the form; at the token endpoint a
  refresh may leave `client_id` out (SMART App Launch lists only `grant_type`, `refresh_token`
  and `scope` for public apps), and the caller passes the client the refresh token names as
  `implied_client_id`. A confidential client is never identified that way: it must authenticate.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ehiconnect.sandbox.config import Client, SandboxConfig
from ehiconnect.sandbox.store import InMemoryAuthStore

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_LIFETIME = dt.timedelta(minutes=5)
CLOCK_SKEW = dt.timedelta(seconds=60)


class ClientAuthError(Exception):
    """Client authentication failed; answer `invalid_client` (401)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def authenticate_client(
    form: Mapping[str, str],
    authorization: str | None,
    config: SandboxConfig,
    store: InMemoryAuthStore,
    token_urls: tuple[str, ...],
    now: dt.datetime,
    *,
    implied_client_id: str | None = None,
) -> Client:
    """The authenticated client, or `ClientAuthError` saying what was wrong.

    `implied_client_id` names the client when the request carries no client identification
    at all; it is accepted only for a public client.
    """
    if authorization and authorization.lower().startswith("basic "):
        client = _basic(authorization, config)
    elif form.get("client_assertion_type") or form.get("client_assertion"):
        client = _private_key_jwt(form, config, store, token_urls, now)
    else:
        client = _public(form.get("client_id") or implied_client_id, config)
    named = form.get("client_id")
    if named and named != client.client_id:
        raise ClientAuthError("client_id in the form differs from the authenticated client")
    return client


def _basic(authorization: str, config: SandboxConfig) -> Client:
    try:
        decoded = base64.b64decode(authorization.split(" ", 1)[1], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, IndexError) as exc:
        raise ClientAuthError("Authorization: Basic header is not valid base64") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise ClientAuthError("Authorization: Basic must carry client_id:client_secret")
    client = config.client(unquote(client_id))
    if client is None or client.kind != "confidential-symmetric" or client.secret is None:
        raise ClientAuthError("unknown client or client not registered for client_secret_basic")
    if not hmac.compare_digest(unquote(secret).encode(), client.secret.encode()):
        raise ClientAuthError("client secret does not match")
    return client


def identifies_client(form: Mapping[str, str], authorization: str | None) -> bool:
    """Whether the request names or authenticates a client by any method."""
    return bool(
        (authorization and authorization.lower().startswith("basic "))
        or form.get("client_assertion_type")
        or form.get("client_assertion")
        or form.get("client_id")
    )


def _public(client_id: str | None, config: SandboxConfig) -> Client:
    if not client_id:
        raise ClientAuthError(
            "no client authentication: send client_id (public clients), "
            "Authorization: Basic, or a client_assertion"
        )
    client = config.client(client_id)
    if client is None:
        raise ClientAuthError(f"unknown client_id {client_id!r}")
    if client.kind != "public":
        raise ClientAuthError(
            f"client {client_id!r} is confidential: authenticate with "
            + (
                "client_secret_basic"
                if client.kind == "confidential-symmetric"
                else "private_key_jwt"
            )
        )
    return client


def _private_key_jwt(
    form: Mapping[str, str],
    config: SandboxConfig,
    store: InMemoryAuthStore,
    token_urls: tuple[str, ...],
    now: dt.datetime,
) -> Client:
    if form.get("client_assertion_type") != JWT_BEARER:
        raise ClientAuthError(f"client_assertion_type must be {JWT_BEARER}")
    assertion = form.get("client_assertion", "")
    try:
        unverified = _unverified_claims(assertion)
    except (JoseError, ValueError) as exc:
        raise ClientAuthError("client_assertion is not a well-formed JWT") from exc
    client_id = str(unverified.get("iss", ""))
    client = config.client(client_id)
    if client is None or client.kind != "confidential-asymmetric" or not client.jwks:
        raise ClientAuthError(f"client_assertion iss {client_id!r} is not a private_key_jwt client")
    try:
        token = jwt.decode(
            assertion,
            KeySet.import_key_set(cast("KeySetSerialization", client.jwks)),
            algorithms=ASSERTION_ALGORITHMS,
        )
    except JoseError as exc:
        raise ClientAuthError(
            "client_assertion signature does not verify with the client's JWKS (RS384/ES384)"
        ) from exc
    claims = token.claims
    if claims.get("sub") != client_id:
        raise ClientAuthError("client_assertion sub must equal iss (the client_id)")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(a in token_urls for a in audiences):
        raise ClientAuthError(f"client_assertion aud must be the token endpoint {token_urls[0]}")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise ClientAuthError("client_assertion needs a numeric exp")
    expires = dt.datetime.fromtimestamp(exp, dt.UTC)
    if expires + CLOCK_SKEW < now:
        raise ClientAuthError("client_assertion has expired")
    if expires > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise ClientAuthError("client_assertion exp is more than 5 minutes in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise ClientAuthError("client_assertion needs a jti")
    if not store.remember_jti(client_id, jti, expires + CLOCK_SKEW, now):
        raise ClientAuthError("client_assertion jti was already used (replay refused)")
    return client


def _unverified_claims(assertion: str) -> dict[str, Any]:
    """The payload, read only to find which client's keys to verify with."""
    payload = json.loads(jws.extract_compact(assertion.encode()).payload)
    if not isinstance(payload, dict):
        raise ValueError("JWT payload is not an object")
    return payload
