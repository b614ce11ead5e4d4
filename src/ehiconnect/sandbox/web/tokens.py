"""Token, introspection and revocation endpoints.

Access tokens are ES256 JWTs signed with the key published at `{slug}/auth/jwks`; their `jti`
is the key of the server-side record, so revocation and the fault switches take effect at once.
Refresh tokens are opaque and rotate: each use returns a new one and retires the old. When
`openid` is granted, the code exchange also returns an RS256 OpenID Connect `id_token`.

Who may call what:
- token: every client authenticates as registered; a public client refreshing may leave
  `client_id` out, and is then identified by its refresh token (SMART App Launch).
- introspection (RFC 7662 §2.1): only a confidential client (client_secret_basic or
  private_key_jwt), and only about its own tokens; any other token is `{"active": false}`.
- revocation (RFC 7009): a public client by its `client_id`, a confidential one with its
  credentials; a token issued to another client is refused (`unauthorized_client`).
Tokens are per health system: one system's token is unknown at another's endpoints.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from ehiconnect.sandbox.config import Client, HealthSystem
from ehiconnect.sandbox.pkce import verifier_matches
from ehiconnect.sandbox.scopes import ScopeSet, parse_scopes
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.sandbox.store import AccessToken, Grant, RefreshToken
from ehiconnect.sandbox.web.client_auth import (
    ClientAuthError,
    authenticate_client,
    identifies_client,
)
from ehiconnect.sandbox.web.common import (
    NO_STORE,
    auth_url,
    fhir_base,
    json_response,
    oauth_error,
    sandbox_state,
    system_or_none,
    unknown_system,
)
from ehiconnect.sandbox.web.faults import request_faults


async def _client(
    request: Request,
    system: HealthSystem,
    form: Mapping[str, str],
    implied_client_id: str | None = None,
) -> Client | Response:
    state = sandbox_state(request)
    token_urls = (auth_url(request, system.slug, "token"), str(request.url))
    try:
        return authenticate_client(
            form,
            request.headers.get("authorization"),
            state.config,
            state.store,
            token_urls,
            state.clock.now(),
            implied_client_id=implied_client_id,
        )
    except ClientAuthError as exc:
        return _invalid_client(exc.description)


def _invalid_client(description: str) -> Response:
    # A 401 must carry a challenge (RFC 9110 §15.5.2; RFC 6749 §5.2 for Basic).
    return oauth_error(
        "invalid_client", description, 401, {"WWW-Authenticate": 'Basic realm="sandbox"'}
    )


async def token(request: Request) -> Response:
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    state = sandbox_state(request)
    faults = state.faults(system.slug)
    if faults.token_endpoint_faults:
        failed = await request_faults(state, faults)
        if failed is not None:
            return failed
    form = {k: str(v) for k, v in (await request.form()).items()}
    grant_type = form.get("grant_type")
    implied_client_id = None
    if grant_type == "refresh_token" and not identifies_client(
        form, request.headers.get("authorization")
    ):
        found = _held_token(state, system, form.get("refresh_token", ""), refresh_only=True)
        if found is None:
            return oauth_error("invalid_grant", "unknown refresh token")
        implied_client_id = found.grant.client_id
    client = await _client(request, system, form, implied_client_id)
    if isinstance(client, Response):
        return client
    if grant_type == "authorization_code":
        return _exchange_code(request, system, client, form)
    if grant_type == "refresh_token":
        return _refresh(request, system, client, form)
    return oauth_error(
        "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
    )


def _exchange_code(
    request: Request, system: HealthSystem, client: Client, form: Mapping[str, str]
) -> Response:
    state = sandbox_state(request)
    code_value = form.get("code", "")
    code = state.store.take_code(code_value)
    if code is None or code.system_slug != system.slug:
        return oauth_error("invalid_grant", "unknown authorization code")
    if code.used:
        if code.grant_id:
            state.store.revoke_grant(code.grant_id)
        return oauth_error(
            "invalid_grant",
            "authorization code was already used; tokens issued with it are now revoked",
        )
    if code.expires_at <= state.clock.now():
        return oauth_error("invalid_grant", "authorization code has expired; authorize again")
    if code.client_id != client.client_id:
        return oauth_error("invalid_grant", "authorization code was issued to another client")
    if form.get("redirect_uri") != code.redirect_uri:
        return oauth_error("invalid_grant", "redirect_uri differs from the one sent to authorize")
    if not verifier_matches(form.get("code_verifier"), code.code_challenge):
        return oauth_error("invalid_grant", "code_verifier does not match the code_challenge")
    grant = Grant(
        grant_id=_new_id(),
        system_slug=system.slug,
        client_id=client.client_id,
        persona_id=code.persona_id,
        patient_id=code.patient_id,
        scope=code.scope,
    )
    state.store.add_grant(grant)
    state.store.link_code(code_value, grant.grant_id)
    return _issue(request, state, system, grant, code.scope, at_sign_in=True, nonce=code.nonce)


def _refresh(
    request: Request, system: HealthSystem, client: Client, form: Mapping[str, str]
) -> Response:
    state = sandbox_state(request)
    value = form.get("refresh_token", "")
    refresh = state.store.get_refresh_token(value)
    grant = state.store.get_grant(refresh.grant_id) if refresh else None
    if refresh is None or grant is None or grant.system_slug != system.slug:
        return oauth_error("invalid_grant", "unknown refresh token")
    if grant.client_id != client.client_id:
        return oauth_error("invalid_grant", "refresh token was issued to another client")
    if grant.revoked:
        return oauth_error("invalid_grant", "consent was revoked; the patient must sign in again")
    now = state.clock.now()
    if refresh.expires_at is not None and refresh.expires_at <= now:
        return oauth_error("invalid_grant", "refresh token has expired; authorize again")
    if state.faults(system.slug).refresh_invalid_grant:
        state.store.revoke_grant(grant.grant_id)
        return oauth_error(
            "invalid_grant", "consent was revoked at the health system; the patient must reconnect"
        )
    scope = refresh.scope
    if form.get("scope"):
        asked = parse_scopes(form["scope"])
        if not set(asked.raw) <= set(scope.raw):
            return oauth_error("invalid_scope", "a refresh may only narrow the granted scope")
        scope = asked
    if not state.store.retire_refresh_token(value):
        return oauth_error(
            "invalid_grant", "refresh token was already used; use the newest one (they rotate)"
        )
    return _issue(request, state, system, grant, scope)


def _issue(
    request: Request,
    state: SandboxState,
    system: HealthSystem,
    grant: Grant,
    scope: ScopeSet,
    *,
    at_sign_in: bool = False,
    nonce: str | None = None,
) -> Response:
    """The token response; at the code exchange (`at_sign_in`) with `openid` granted, it also
    carries an id_token (OpenID Connect Core §3.1.3.3; not repeated on refresh)."""
    now = state.clock.now()
    lifetime = system.lifetimes.access_token_s
    expires = now + dt.timedelta(seconds=lifetime)
    key = state.store.add_access_token(AccessToken(grant.grant_id, scope, expires), now)
    claims = {
        "iss": auth_url(request, system.slug, "").rstrip("/"),
        "aud": fhir_base(request, system.slug),
        "sub": grant.persona_id,
        "client_id": grant.client_id,
        "patient": grant.patient_id,
        "scope": scope.to_string(),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": key,
    }
    header = {"alg": "ES256", "kid": state.signing_key.kid or "", "typ": "at+jwt"}
    body: dict[str, object] = {
        "access_token": jwt.encode(header, claims, state.signing_key, algorithms=["ES256"]),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": scope.to_string(),
    }
    if scope.wants_patient:
        body["patient"] = grant.patient_id
    if scope.openid and at_sign_in:
        body["id_token"] = _id_token(request, state, system, grant, scope, nonce)
    if scope.offline:
        lifetime_s = system.lifetimes.refresh_token_s
        body["refresh_token"] = state.store.add_refresh_token(
            RefreshToken(
                grant.grant_id,
                scope,
                now + dt.timedelta(seconds=lifetime_s) if lifetime_s else None,
            )
        )
    return json_response(body, headers=NO_STORE)


def _id_token(
    request: Request,
    state: SandboxState,
    system: HealthSystem,
    grant: Grant,
    scope: ScopeSet,
    nonce: str | None,
) -> str:
    """OpenID Connect Core §2 id_token; `fhirUser` (SMART 2) and the SMART 1 `profile` claim
    carry the signed-in patient's FHIR resource URL when those scopes were granted."""
    now = state.clock.now()
    claims: dict[str, object] = {
        "iss": auth_url(request, system.slug, "").rstrip("/"),
        "sub": grant.persona_id,
        "aud": grant.client_id,
        "iat": int(now.timestamp()),
        "exp": int((now + dt.timedelta(seconds=system.lifetimes.access_token_s)).timestamp()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    patient_url = f"{fhir_base(request, system.slug)}/Patient/{grant.patient_id}"
    if "fhirUser" in scope.other:
        claims["fhirUser"] = patient_url
    if "profile" in scope.other:
        claims["profile"] = patient_url
    header = {"alg": "RS256", "kid": state.id_token_key.kid or "", "typ": "JWT"}
    return jwt.encode(header, claims, state.id_token_key, algorithms=["RS256"])


def access_token_key(state: SandboxState, value: str) -> str | None:
    """The store key inside a sandbox access token, or None if the JWT does not verify.

    A token verified once is not verified again (the key it carries is remembered); whether it
    is still valid (expiry, revocation) is the store's answer, asked every time."""
    known = state.verified_access_tokens.get(value)
    if known is not None:
        return known
    try:
        decoded = jwt.decode(value, state.signing_key, algorithms=["ES256"])
    except (JoseError, ValueError):
        return None
    jti = decoded.claims.get("jti")
    if not isinstance(jti, str):
        return None
    state.remember_verified_token(value, jti)
    return jti


@dataclass(frozen=True)
class _HeldToken:
    """An access or refresh token of this health system, as the store knows it."""

    grant: Grant
    scope: ScopeSet
    expires_at: dt.datetime | None
    live: bool
    access_key: str | None
    """The store key of an access token; None for a refresh token."""


def _held_token(
    state: SandboxState, system: HealthSystem, value: str, *, refresh_only: bool = False
) -> _HeldToken | None:
    """The token `value` if this system issued it (live or not), else None."""
    if not value:
        return None
    now = state.clock.now()
    key = None if refresh_only else access_token_key(state, value)
    access = state.store.get_access_token(key) if key else None
    if key and access is not None:
        grant = state.store.get_grant(access.grant_id)
        if grant is None or grant.system_slug != system.slug:
            return None
        live = not access.revoked and not grant.revoked and access.expires_at > now
        return _HeldToken(grant, access.scope, access.expires_at, live, key)
    refresh = state.store.get_refresh_token(value)
    grant = state.store.get_grant(refresh.grant_id) if refresh else None
    if refresh is None or grant is None or grant.system_slug != system.slug:
        return None
    alive = refresh.expires_at is None or refresh.expires_at > now
    live = refresh.active and not grant.revoked and alive
    return _HeldToken(grant, refresh.scope, refresh.expires_at, live, None)


@dataclass(frozen=True)
class _TokenQuestion:
    """An introspection or revocation request: the authenticated client, and the token it names
    (None when this system does not know it)."""

    state: SandboxState
    client: Client
    held: _HeldToken | None


async def _token_question(request: Request) -> _TokenQuestion | Response:
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    state = sandbox_state(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    client = await _client(request, system, form)
    if isinstance(client, Response):
        return client
    return _TokenQuestion(state, client, _held_token(state, system, form.get("token", "")))


async def introspect(request: Request) -> Response:
    asked = await _token_question(request)
    if isinstance(asked, Response):
        return asked
    client, held = asked.client, asked.held
    if client.kind == "public":
        return _invalid_client(
            "introspection needs a confidential client's credentials (client_secret_basic or "
            "private_key_jwt); naming a public client_id does not authorize it (RFC 7662 §2.1)"
        )
    if held is None or not held.live or held.grant.client_id != client.client_id:
        return json_response({"active": False}, headers=NO_STORE)
    kind = "refresh_token" if held.access_key is None else "access_token"
    return json_response(_active(held.grant, held.scope, kind, held.expires_at), headers=NO_STORE)


def _active(
    grant: Grant, scope: ScopeSet, kind: str, expires_at: dt.datetime | None
) -> dict[str, object]:
    out: dict[str, object] = {
        "active": True,
        "scope": scope.to_string(),
        "client_id": grant.client_id,
        "patient": grant.patient_id,
        "sub": grant.persona_id,
        "token_type": "Bearer" if kind == "access_token" else "refresh_token",
    }
    if expires_at is not None:
        out["exp"] = int(expires_at.timestamp())
    return out


async def revoke(request: Request) -> Response:
    """RFC 7009: revoking a refresh token ends the whole grant; an access token, just itself."""
    asked = await _token_question(request)
    if isinstance(asked, Response):
        return asked
    held, store = asked.held, asked.state.store
    if held is None:
        # §2.2: an unknown or already invalid token is not an error.
        return Response(status_code=200, headers=NO_STORE)
    if held.grant.client_id != asked.client.client_id:
        return oauth_error(
            "unauthorized_client",
            "this token was issued to another client; a client may revoke only its own tokens",
        )
    if held.access_key is None:
        store.revoke_grant(held.grant.grant_id)
    else:
        store.revoke_access_token(held.access_key)
    return Response(status_code=200, headers=NO_STORE)


def _new_id() -> str:
    return secrets.token_hex(16)
