"""Token, introspection and revocation endpoints.

Access tokens are ES256 JWTs signed with the key published at `{slug}/auth/jwks`; their `jti`
is the key of the server-side record, so revocation and the fault switches take effect at once.
Refresh tokens are opaque and rotate: each use returns a new one and retires the old.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping

from joserfc import jwt
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from ehiconnect.sandbox.config import Client, HealthSystem
from ehiconnect.sandbox.pkce import verifier_matches
from ehiconnect.sandbox.scopes import ScopeSet, parse_scopes
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.sandbox.store import AccessToken, Grant, RefreshToken
from ehiconnect.sandbox.web.client_auth import ClientAuthError, authenticate_client
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
    request: Request, system: HealthSystem, form: Mapping[str, str]
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
        )
    except ClientAuthError as exc:
        headers = {}
        if request.headers.get("authorization", "").lower().startswith("basic "):
            headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
        return oauth_error("invalid_client", exc.description, 401, headers)


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
    client = await _client(request, system, form)
    if isinstance(client, Response):
        return client
    grant_type = form.get("grant_type")
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
    return _issue(request, state, system, grant, code.scope)


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
    request: Request, state: SandboxState, system: HealthSystem, grant: Grant, scope: ScopeSet
) -> Response:
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


def access_token_key(state: SandboxState, value: str) -> str | None:
    """The store key inside a sandbox access token, or None if the JWT does not verify."""
    try:
        decoded = jwt.decode(value, state.signing_key, algorithms=["ES256"])
    except (JoseError, ValueError):
        return None
    jti = decoded.claims.get("jti")
    return jti if isinstance(jti, str) else None


async def introspect(request: Request) -> Response:
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    state = sandbox_state(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    client = await _client(request, system, form)
    if isinstance(client, Response):
        return client
    value = form.get("token", "")
    now = state.clock.now()
    key = access_token_key(state, value)
    access = state.store.get_access_token(key) if key else None
    if access is not None:
        grant = state.store.get_grant(access.grant_id)
        if grant and not access.revoked and not grant.revoked and access.expires_at > now:
            return json_response(_active(grant, access.scope, "access_token", access.expires_at))
    refresh = state.store.get_refresh_token(value)
    if refresh is not None and refresh.active:
        grant = state.store.get_grant(refresh.grant_id)
        alive = refresh.expires_at is None or refresh.expires_at > now
        if grant and not grant.revoked and alive:
            return json_response(_active(grant, refresh.scope, "refresh_token", refresh.expires_at))
    return json_response({"active": False})


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
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    state = sandbox_state(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    client = await _client(request, system, form)
    if isinstance(client, Response):
        return client
    value = form.get("token", "")
    refresh = state.store.get_refresh_token(value)
    if refresh is not None:
        grant = state.store.get_grant(refresh.grant_id)
        if grant is not None and grant.client_id == client.client_id:
            state.store.revoke_grant(grant.grant_id)
    key = access_token_key(state, value)
    access = state.store.get_access_token(key) if key else None
    if key and access is not None:
        grant = state.store.get_grant(access.grant_id)
        if grant is not None and grant.client_id == client.client_id:
            state.store.revoke_access_token(key)
    return Response(status_code=200, headers=NO_STORE)


def _new_id() -> str:
    return secrets.token_hex(16)
