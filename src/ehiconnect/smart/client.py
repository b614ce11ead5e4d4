"""Talking to a health system's authorization server: discovery, code exchange, refresh, revoke.

Every call goes through the caller's guarded client (`runtime.http`, see `http/ssrf.py`) and says
whether a private address is acceptable for this health system (`allow_private`: test mode, or
an endpoint the operator marked `allow_private_network`). A refused address is a FatalError:
nothing (no code, refresh token or client credential) is sent there.

Client authentication follows the endpoint's settings: `none` (public client: client_id in the
body), `client_secret_basic` (HTTP Basic with the client secret). Errors are classified by what
the caller does: TemporaryError (retry), ReconsentRequired (the patient must sign in again),
FatalError (misconfiguration or a broken server; give up).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ehiconnect.errors import FatalError, ReconsentRequired, TemporaryError
from ehiconnect.http.ssrf import TargetRefused, reach

SMART_CONFIGURATION = ".well-known/smart-configuration"


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None
    capabilities: frozenset[str]
    code_challenge_methods: frozenset[str]
    scopes_supported: frozenset[str]


JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClientAuth:
    client_id: str
    method: str  # none | client_secret_basic | private_key_jwt
    secret: str | None = None
    # For private_key_jwt: signs a client assertion for a given token endpoint URL.
    assertion: Callable[[str], str] | None = None


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    token_type: str
    expires_in: int | None
    scope: str | None
    refresh_token: str | None
    patient: str | None
    raw_keys: frozenset[str]


async def discover(
    client: httpx.AsyncClient, fhir_base: str, *, allow_private: bool = False
) -> SmartConfiguration:
    url = f"{fhir_base.rstrip('/')}/{SMART_CONFIGURATION}"
    try:
        response = await client.get(
            url,
            headers={"Accept": "application/json"},
            extensions=reach(allow_private=allow_private),
        )
    except TargetRefused as exc:
        raise FatalError(str(exc), failure_reason="endpoint_misconfigured") from None
    except httpx.HTTPError as exc:
        raise TemporaryError(f"the health system did not answer ({type(exc).__name__})") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise TemporaryError(f"the health system answered {response.status_code} to discovery")
    if response.status_code != 200:
        raise FatalError(
            f"the health system has no SMART configuration ({response.status_code})",
            failure_reason="endpoint_misconfigured",
        )
    try:
        document = response.json()
        authorization = document["authorization_endpoint"]
        token = document["token_endpoint"]
    except (ValueError, KeyError, TypeError):
        raise FatalError(
            "the health system's SMART configuration lacks authorization/token endpoints",
            failure_reason="endpoint_misconfigured",
        ) from None
    return SmartConfiguration(
        authorization_endpoint=authorization,
        token_endpoint=token,
        revocation_endpoint=document.get("revocation_endpoint"),
        capabilities=frozenset(document.get("capabilities", [])),
        code_challenge_methods=frozenset(document.get("code_challenge_methods_supported", [])),
        scopes_supported=frozenset(document.get("scopes_supported", [])),
    )


def _auth(auth: ClientAuth, form: dict[str, str], audience: str) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if auth.method == "client_secret_basic":
        if not auth.secret:
            raise FatalError(
                "the endpoint uses client_secret_basic but no client secret is configured; "
                "set it with `ehiconnect catalog configure`",
                failure_reason="endpoint_misconfigured",
            )
        pair = f"{quote(auth.client_id, safe='')}:{quote(auth.secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif auth.method == "none":
        form["client_id"] = auth.client_id
    elif auth.method == "private_key_jwt":
        if auth.assertion is None:
            raise FatalError(
                "the endpoint uses private_key_jwt but no platform signing key is available",
                failure_reason="endpoint_misconfigured",
            )
        form["client_assertion_type"] = JWT_BEARER
        form["client_assertion"] = auth.assertion(audience)
    else:
        raise FatalError(
            f"client authentication {auth.method!r} is not supported yet",
            failure_reason="endpoint_misconfigured",
        )
    return headers


async def _token_request(
    client: httpx.AsyncClient,
    token_endpoint: str,
    auth: ClientAuth,
    form: dict[str, str],
    *,
    allow_private: bool,
) -> TokenResponse:
    headers = _auth(auth, form, token_endpoint)
    try:
        response = await client.post(
            token_endpoint,
            data=form,
            headers=headers,
            extensions=reach(allow_private=allow_private),
        )
    except TargetRefused as exc:
        # Codes, refresh tokens and client credentials never go to such an address.
        raise FatalError(str(exc), failure_reason="token_refresh_failure") from None
    except httpx.HTTPError as exc:
        raise TemporaryError(f"the token endpoint did not answer ({type(exc).__name__})") from exc
    return parse_token_response(response)


def parse_token_response(response: httpx.Response) -> TokenResponse:
    """Read a token endpoint's answer, or raise the error class that says what to do next."""
    if response.status_code == 429 or response.status_code >= 500:
        raise TemporaryError(f"the token endpoint answered {response.status_code}")
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TemporaryError(
            f"the token endpoint answered {response.status_code} without a JSON object"
        )
    if response.status_code != 200:
        error = str(body.get("error", "unknown_error"))
        if error == "invalid_grant":
            raise ReconsentRequired(
                "the health system refused the grant (invalid_grant): the authorization was "
                "revoked, expired or already used; the patient must connect again"
            )
        raise FatalError(
            f"the token endpoint refused the request: {error}",
            failure_reason="token_refresh_failure",
        )
    if not isinstance(body.get("access_token"), str):
        raise FatalError(
            "the token response has no access_token", failure_reason="token_refresh_failure"
        )
    return TokenResponse(
        access_token=body["access_token"],
        token_type=str(body.get("token_type", "Bearer")),
        expires_in=_seconds(body.get("expires_in")),
        scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
        refresh_token=body.get("refresh_token")
        if isinstance(body.get("refresh_token"), str)
        else None,
        patient=str(body["patient"]) if body.get("patient") is not None else None,
        raw_keys=frozenset(body),
    )


async def exchange_code(
    client: httpx.AsyncClient,
    token_endpoint: str,
    auth: ClientAuth,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    allow_private: bool = False,
) -> TokenResponse:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    return await _token_request(client, token_endpoint, auth, form, allow_private=allow_private)


async def refresh(
    client: httpx.AsyncClient,
    token_endpoint: str,
    auth: ClientAuth,
    *,
    refresh_token: str,
    allow_private: bool = False,
) -> TokenResponse:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await _token_request(client, token_endpoint, auth, form, allow_private=allow_private)


async def revoke(
    client: httpx.AsyncClient,
    revocation_endpoint: str,
    auth: ClientAuth,
    *,
    token: str,
    token_type_hint: str,
    allow_private: bool = False,
) -> bool:
    """RFC 7009 revocation; True when the server accepted it. Never raises for a refusal."""
    form = {"token": token, "token_type_hint": token_type_hint}
    try:
        headers = _auth(auth, form, revocation_endpoint)
        response = await client.post(
            revocation_endpoint,
            data=form,
            headers=headers,
            extensions=reach(allow_private=allow_private),
        )
    except (httpx.HTTPError, FatalError, TargetRefused):
        return False
    return response.status_code == 200


# Ten years: anything longer is as good as "no expiry" and would overflow datetimes.
_MAX_LIFETIME_SECONDS = 10 * 365 * 24 * 3600


def _seconds(value: object) -> int | None:
    """`expires_in` as whole seconds, or None when it is missing or not a sane positive number.

    Health systems send numbers, numeric strings, and sometimes junk; junk means "unknown"
    (the token is then used until refused), never a crash of the consent or the export.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return int(min(value, _MAX_LIFETIME_SECONDS))
