"""SMART standalone launch, patient side: `authorize` → sign-in page → consent page → code.

Errors about the client itself (unknown `client_id`, a `redirect_uri` not registered for it)
are shown to the patient and never redirected, as RFC 6749 §4.1.2.1 requires. Every other error
goes back to the client's `redirect_uri` with `error`, `error_description` and `state`.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ehiconnect.sandbox.capability import COMPARTMENT_TYPES
from ehiconnect.sandbox.config import Client, HealthSystem
from ehiconnect.sandbox.generator import NON_COMPARTMENT_TYPES
from ehiconnect.sandbox.personas import persona_info
from ehiconnect.sandbox.pkce import challenge_problem
from ehiconnect.sandbox.scopes import (
    GRANTABLE_NON_CLINICAL,
    ScopeSet,
    consented,
    narrow,
    parse_scopes,
)
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.sandbox.store import AuthorizationCode, PendingAuthorization
from ehiconnect.sandbox.web.common import auth_url, fhir_base, sandbox_state, system_or_none
from ehiconnect.sandbox.web.pages import FIXED_SCOPES, consent_page, error_page, login_page

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_NONCE_LENGTH = 512
CONSENT_TYPES: tuple[str, ...] = (*COMPARTMENT_TYPES, *sorted(NON_COMPARTMENT_TYPES))
"""The types a wildcard scope is spelled out into on the consent page."""


def with_opener_policy(
    page: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A portal page that sends the system's `portal_opener_policy` fault as its
    `Cross-Origin-Opener-Policy` (none by default)."""

    @functools.wraps(page)
    async def answer(request: Request) -> Response:
        response = await page(request)
        system = system_or_none(request)
        if system is not None:
            policy = sandbox_state(request).faults(system.slug).portal_opener_policy
            if policy:
                response.headers["Cross-Origin-Opener-Policy"] = policy
        return response

    return answer


def redirect_uri_allowed(client: Client, redirect_uri: str) -> bool:
    """Registered exactly, or any http(s) loopback URI when the client allows that."""
    if redirect_uri in client.redirect_uris:
        return True
    parts = urlsplit(redirect_uri)
    return (
        client.allow_loopback_redirects
        and parts.scheme in ("http", "https")
        and parts.hostname in LOOPBACK_HOSTS
        and not parts.fragment
    )


def with_params(uri: str, params: dict[str, str]) -> str:
    separator = "&" if urlsplit(uri).query else "?"
    return uri + separator + urlencode(params)


def _redirect_error(uri: str, error: str, description: str, state: str | None) -> Response:
    params = {"error": error, "error_description": description}
    if state:
        params["state"] = state
    return RedirectResponse(with_params(uri, params), status_code=302)


def _html_error(title: str, message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(error_page(title, message), status_code=status)


def grantable(requested: ScopeSet) -> ScopeSet:
    """What the sandbox can grant: patient/ clinical scopes and the non-clinical scopes it
    honours (`GRANTABLE_NON_CLINICAL`); anything else asked for is left out of the grant."""
    keep = {s.raw for s in requested.clinical if s.context == "patient"}
    keep |= requested.other & set(GRANTABLE_NON_CLINICAL)
    return narrow(requested, keep)


async def authorize(request: Request) -> Response:
    system = system_or_none(request)
    if system is None:
        return _html_error("Unknown health system", "This sandbox has no such health system.", 404)
    state = sandbox_state(request)
    q = request.query_params
    client = state.config.client(q.get("client_id", ""))
    if client is None:
        return _html_error(
            "Unknown application",
            f"client_id {q.get('client_id', '')!r} is not registered at this sandbox; "
            "use one of: " + ", ".join(c.client_id for c in state.config.clients),
        )
    redirect_uri = q.get("redirect_uri", "")
    if not redirect_uri or not redirect_uri_allowed(client, redirect_uri):
        return _html_error(
            "Invalid redirect_uri",
            "redirect_uri is missing or not registered for this client "
            "(sandbox clients accept http(s) loopback URIs and their configured ones).",
        )
    client_state = q.get("state")
    if q.get("response_type") != "code":
        return _redirect_error(
            redirect_uri, "unsupported_response_type", "response_type must be code", client_state
        )
    if not client_state:
        return _redirect_error(redirect_uri, "invalid_request", "state is required", None)
    expected_aud = fhir_base(request, system.slug)
    if q.get("aud", "").rstrip("/") != expected_aud:
        return _redirect_error(
            redirect_uri,
            "invalid_request",
            f"aud must be this health system's FHIR base URL {expected_aud}",
            client_state,
        )
    pkce_problem = challenge_problem(q.get("code_challenge"), q.get("code_challenge_method"))
    if pkce_problem:
        return _redirect_error(redirect_uri, "invalid_request", pkce_problem, client_state)
    nonce = q.get("nonce") or None
    if nonce is not None and len(nonce) > MAX_NONCE_LENGTH:
        return _redirect_error(
            redirect_uri,
            "invalid_request",
            f"nonce is longer than {MAX_NONCE_LENGTH} characters",
            client_state,
        )
    requested = grantable(parse_scopes(q.get("scope")))
    if not requested.clinical:
        return _redirect_error(
            redirect_uri,
            "invalid_scope",
            "ask for at least one patient/ scope, e.g. patient/*.rs or patient/*.read",
            client_state,
        )
    now = state.clock.now()
    pending = PendingAuthorization(
        request_id=secrets.token_urlsafe(24),
        system_slug=system.slug,
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=client_state,
        scope=requested,
        code_challenge=q.get("code_challenge", ""),
        expires_at=now + dt.timedelta(seconds=system.lifetimes.pending_login_s),
        nonce=nonce,
    )
    state.store.add_pending(pending, now)
    action = auth_url(request, system.slug, "login")
    return HTMLResponse(login_page(system, action, pending.request_id, client.client_id))


@dataclass(frozen=True)
class _PagePost:
    """A form posted from the sign-in or consent page, with the authorization it continues."""

    system: HealthSystem
    state: SandboxState
    form: FormData
    pending: PendingAuthorization


async def _page_post(request: Request, page: str) -> _PagePost | Response:
    """The posted form and the authorization it continues; an error page when that is gone (`page`
    names the page in it)."""
    system = system_or_none(request)
    if system is None:
        return _html_error("Unknown health system", "This sandbox has no such health system.", 404)
    state = sandbox_state(request)
    form = await request.form()
    request_id = str(form.get("request_id", ""))
    pending = state.store.get_pending(request_id, state.clock.now())
    if pending is None or pending.system_slug != system.slug:
        return _expired(page)
    return _PagePost(system, state, form, pending)


def _expired(page: str) -> HTMLResponse:
    return _html_error(
        f"{page.capitalize()} expired",
        f"This {page} page is no longer valid; start again from your app.",
    )


async def login(request: Request) -> Response:
    posted = await _page_post(request, "sign-in")
    if isinstance(posted, Response):
        return posted
    system, form, pending = posted.system, posted.form, posted.pending
    persona = system.persona_by_username(str(form.get("username", "")))
    password = str(form.get("password", ""))
    if persona is None or not secrets.compare_digest(persona.password, password):
        page = login_page(
            system,
            auth_url(request, system.slug, "login"),
            pending.request_id,
            pending.client_id,
            error="Unknown username or wrong password. The test patients are listed below.",
        )
        return HTMLResponse(page, status_code=401)
    pending.persona_id = persona.persona_id
    page = consent_page(
        system,
        auth_url(request, system.slug, "consent"),
        pending.request_id,
        pending.client_id,
        f"{persona.given_name} {persona.family_name}",
        pending.scope,
        CONSENT_TYPES,
    )
    return HTMLResponse(page)


async def consent(request: Request) -> Response:
    posted = await _page_post(request, "consent")
    if isinstance(posted, Response):
        return posted
    system, state, form, pending = posted.system, posted.state, posted.form, posted.pending
    if pending.persona_id is None:  # the consent page was posted without signing in first
        return _expired("consent")
    state.store.finish_pending(pending.request_id)
    if form.get("decision") != "allow":
        return _redirect_error(
            pending.redirect_uri, "access_denied", "the patient denied access", pending.state
        )
    kept = {str(v) for v in form.getlist("scope")} | (set(pending.scope.raw) & FIXED_SCOPES)
    types = {str(v) for v in form.getlist("resource_type")}
    granted = consented(pending.scope, kept, types, CONSENT_TYPES)
    if not granted.clinical:
        return _redirect_error(
            pending.redirect_uri, "access_denied", "the patient shared no data", pending.state
        )
    persona = system.persona(pending.persona_id)
    if persona is None:
        return _html_error("Unknown patient", "This test patient no longer exists.")
    code = state.store.add_code(
        AuthorizationCode(
            system_slug=system.slug,
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            persona_id=persona.persona_id,
            patient_id=persona_info(system, persona).patient_id,
            scope=granted,
            expires_at=state.clock.now()
            + dt.timedelta(seconds=system.lifetimes.authorization_code_s),
            nonce=pending.nonce,
        ),
        state.clock.now(),
    )
    return RedirectResponse(
        with_params(pending.redirect_uri, {"code": code, "state": pending.state}), status_code=302
    )
