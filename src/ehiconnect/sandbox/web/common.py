"""Shared HTTP plumbing: URLs as the client sees them, JSON and OperationOutcome responses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ehiconnect.sandbox.config import HealthSystem
from ehiconnect.sandbox.state import SandboxState, UnknownSystemError

FHIR_JSON = "application/fhir+json"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def sandbox_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def server_base(request: Request) -> str:
    """The sandbox's base URL: configured, or as the client addressed it."""
    configured = sandbox_state(request).config.public_base_url
    if configured:
        return configured.rstrip("/")
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def fhir_base(request: Request, slug: str) -> str:
    """The FHIR base URL of one health system; also the `aud` clients must send."""
    return f"{server_base(request)}/{slug}/fhir"


def auth_url(request: Request, slug: str, endpoint: str) -> str:
    return f"{server_base(request)}/{slug}/auth/{endpoint}"


def system_or_none(request: Request) -> HealthSystem | None:
    try:
        return sandbox_state(request).system(request.path_params["slug"])
    except UnknownSystemError:
        return None


def json_response(
    data: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    media_type: str = "application/json",
) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type=media_type)


def oauth_error(
    error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    """An RFC 6749 error body; `description` tells the client what to fix."""
    return json_response(
        {"error": error, "error_description": description},
        status,
        {**NO_STORE, **(headers or {})},
    )


def operation_outcome(
    status: int,
    code: str,
    diagnostics: str,
    headers: dict[str, str] | None = None,
    severity: str = "error",
) -> Response:
    """A FHIR error: an OperationOutcome with one issue."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
    return json_response(body, status, headers, FHIR_JSON)


def unknown_system(request: Request) -> Response:
    known = ", ".join(s.slug for s in sandbox_state(request).config.systems)
    slug = request.path_params.get("slug", "")
    return operation_outcome(404, "not-found", f"no sandbox health system {slug!r}; try: {known}")
