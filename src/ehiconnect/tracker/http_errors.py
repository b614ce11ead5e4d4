"""Every error the tracker answers, in the shape its caller reads.

The JSON routes answer the envelope `{"success": false, "error", "error_description"}`; the
`/fhir` routes a FHIR OperationOutcome (`application/fhir+json`). The exception handlers make
Starlette's own answers (unknown path, wrong method) and any unexpected failure take the same
shapes, so no path answers text/plain. An unexpected failure is logged by exception class and
route name with a traceback of code lines only: exception messages (a database error quotes the
values it was given) can hold patient data and are never logged.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"

_ENVELOPE_CODES = {
    400: ("invalid_request", "the request is malformed"),
    401: ("unauthorized", "send valid credentials"),
    403: ("forbidden", "these credentials may not do this"),
    404: (
        "not_found",
        "there is nothing at this path; the tracker serves /stitch-events, /webhooks, /fhir "
        "and /healthz",
    ),
    405: ("method_not_allowed", "this path does not accept this HTTP method; see the Allow header"),
    413: ("payload_too_large", "the request body is too large"),
    415: ("unsupported_media_type", "send application/json"),
    500: ("internal_error", "the tracker failed unexpectedly"),
}
_FHIR_ISSUES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    413: "too-long",
    500: "exception",
}

Endpoint = Callable[[Request], Awaitable[Response]]


def envelope_error(
    status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": code, "error_description": description},
        status_code=status,
        headers=headers,
    )


def fhir_response(body: dict[str, Any], status: int = 200, **kwargs: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON, **kwargs)


def fhir_error(
    status: int, issue_code: str, diagnostics: str, headers: dict[str, str] | None = None
) -> Response:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": issue_code, "diagnostics": diagnostics}],
    }
    return fhir_response(outcome, status, headers=headers)


def is_fhir_path(path: str) -> bool:
    return path == "/fhir" or path.startswith("/fhir/")


def error_for(
    request: Request, status: int, description: str, headers: dict[str, str] | None = None
) -> Response:
    """The error in the shape of the route asked for (envelope, or OperationOutcome under /fhir)."""
    if is_fhir_path(request.url.path):
        return fhir_error(status, _FHIR_ISSUES.get(status, "processing"), description, headers)
    code = _ENVELOPE_CODES.get(status, ("http_error", ""))[0]
    return envelope_error(status, code, description, headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own HTTP errors (404 unknown path, 405 wrong method with Allow, …)."""
    assert isinstance(exc, HTTPException)
    default = _ENVELOPE_CODES.get(exc.status_code, ("http_error", "the request failed"))[1]
    detail = exc.detail if exc.detail and exc.detail != _reason(exc.status_code) else default
    if is_fhir_path(request.url.path) and exc.status_code == 404:
        detail = (
            "there is nothing at this path; search with GET /fhir/{type}, read /fhir/{type}/{id}"
        )
    return error_for(request, exc.status_code, detail, dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """The last resort: a 500 in the route's shape, logged without the exception's message."""
    endpoint = request.scope.get("endpoint")
    route = getattr(endpoint, "__name__", "unknown")
    log.error(
        "tracker request failed",
        extra={
            "route": route,
            "method": request.method,
            "error_type": type(exc).__name__,
            "code_lines": "".join(traceback.format_tb(exc.__traceback__)),
        },
    )
    return error_for(
        request, 500, "the tracker failed unexpectedly; retry later, and see its log if it persists"
    )


def guarded(endpoint: Endpoint) -> Endpoint:
    """Answer an unexpected failure of `endpoint` itself, instead of letting it escape.

    Starlette's 500 handler runs outside the app and re-raises, so the server logs the exception
    with its message and drops the connection; caught here, neither happens.
    """

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except HTTPException:
            raise
        except Exception as exc:
            return await unexpected_error(request, exc)

    return run


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    HTTPException: http_exception,
    Exception: unexpected_error,
}
