"""The sandbox ASGI application: every configured health system on one server.

Layout per health system `{slug}` (default server `http://127.0.0.1:8500`):

- FHIR base (also the OAuth `aud`): `/{slug}/fhir` — `metadata`, `{type}/{id}`, `{type}?...`,
  `Patient/{id}/$everything` (where supported), `Binary/{id}`,
  `.well-known/smart-configuration`
- Authorization server (also the OpenID Connect issuer): `/{slug}/auth/authorize`, `/login`,
  `/consent`, `/token`, `/introspect`, `/revoke`, `/jwks`, `/.well-known/openid-configuration`
- Faults admin: `GET/PUT/DELETE /_admin/{slug}/faults`
- `/` lists systems, base URLs and personas as JSON; `/{slug}/logo.svg` is the brand logo.
"""

from __future__ import annotations

from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from ehiconnect.clock import Clock
from ehiconnect.http.asgi_guards import edge_middleware, outcome_refusal
from ehiconnect.sandbox.config import SandboxConfig
from ehiconnect.sandbox.personas import list_personas
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.sandbox.web import admin, authorize, discovery, fhir_api, tokens
from ehiconnect.sandbox.web.common import (
    auth_url,
    fhir_base,
    json_response,
    oauth_error,
    sandbox_state,
    system_or_none,
    unknown_system,
)
from ehiconnect.sandbox.web.faults import silence_simulated_drops


def build_sandbox_app(
    config: SandboxConfig | None = None,
    *,
    clock: Clock | None = None,
    state: SandboxState | None = None,
) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox` is its `SandboxState`.

    `config` defaults to the three shipped systems and clients. Pass a `clock` (e.g.
    `ehiconnect.clock.FrozenClock`) to step code and token expiry in tests, or a ready `state`.
    Change faults from Python with `app.state.sandbox.set_faults(slug, Faults(...))`.
    """
    state = state or SandboxState(config or SandboxConfig(), clock=clock)
    silence_simulated_drops()
    fhir = "/{slug}/fhir"
    auth = "/{slug}/auth"
    routes = [
        Route("/", index),
        Route("/{slug}/logo.svg", logo),
        Route(fhir + "/.well-known/smart-configuration", discovery.smart_configuration),
        Route(fhir + "/metadata", fhir_api.metadata),
        Route(fhir + "/Patient/{id}/$everything", fhir_api.everything),
        Route(fhir + "/Binary/{id}", fhir_api.binary),
        Route(fhir + "/{type}", fhir_api.search),
        Route(fhir + "/{type}/{id}", fhir_api.read),
        Route(auth + "/authorize", authorize.with_opener_policy(authorize.authorize)),
        Route(auth + "/login", authorize.with_opener_policy(authorize.login), methods=["POST"]),
        Route(auth + "/consent", authorize.with_opener_policy(authorize.consent), methods=["POST"]),
        Route(auth + "/token", tokens.token, methods=["POST"]),
        Route(auth + "/introspect", tokens.introspect, methods=["POST"]),
        Route(auth + "/revoke", tokens.revoke, methods=["POST"]),
        Route(auth + "/jwks", discovery.jwks),
        Route(auth + "/.well-known/openid-configuration", discovery.openid_configuration),
        Route("/_admin/{slug}/faults", admin.get_faults, methods=["GET"]),
        Route("/_admin/{slug}/faults", admin.put_faults, methods=["PUT"]),
        Route("/_admin/{slug}/faults", admin.delete_faults, methods=["DELETE"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=edge_middleware(max_body_bytes=MAX_BODY_BYTES, refuse=_refuse),
    )
    app.state.sandbox = state
    return app


# Token, login and consent forms and fault settings are a few KiB at most.
MAX_BODY_BYTES = 1024 * 1024


def _refuse(scope: Scope, status: int, code: str, description: str) -> Response:
    """An OperationOutcome under a FHIR base (`/{slug}/fhir/...`), an OAuth error elsewhere."""
    if scope.get("path", "").split("/")[2:3] == ["fhir"]:
        return outcome_refusal(scope, status, code, description)
    return oauth_error("invalid_request", description, status)


async def index(request: Request) -> Response:
    """Systems, their URLs and personas (with passwords: everything here is synthetic)."""
    state = sandbox_state(request)
    systems = []
    for system in state.config.systems:
        systems.append(
            {
                "slug": system.slug,
                "name": system.name,
                "behaviour": system.behaviour,
                "fhir_base": fhir_base(request, system.slug),
                "authorize": auth_url(request, system.slug, "authorize"),
                "personas": [
                    {
                        "username": p.username,
                        "password": p.password,
                        "patient_id": p.patient_id,
                        "size_class": p.size_class,
                    }
                    for p in list_personas(system)
                ],
            }
        )
    return json_response(
        {"systems": systems, "clients": [c.client_id for c in state.config.clients]}
    )


async def logo(request: Request) -> Response:
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    letter = escape(system.name[:1])
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        '<rect width="64" height="64" rx="12" fill="#1f6feb"/>'
        f'<text x="32" y="42" font-size="32" text-anchor="middle" fill="#fff" '
        f'font-family="sans-serif">{letter}</text></svg>'
    )
    return Response(svg, media_type="image/svg+xml")
