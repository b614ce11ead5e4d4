"""The response envelope of DESIGN §1, for every response including framework errors.

{"success": true, "data": ...}
{"success": false, "error": "<code>", "error_description": "<what went wrong, what to do>"}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from procrastinate.exceptions import ConnectorException
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from ehiconnect.api.cors import error_cors_headers
from ehiconnect.db.unavailable import DATABASE_AWAY, database_unavailable, is_database_away
from ehiconnect.errors import ApiError, RateLimited, ServiceUnavailable, Unauthorized
from ehiconnect.http.asgi_guards import add_security_headers

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ("invalid_request", "the request is malformed"),
    401: ("unauthorized", "send valid credentials"),
    403: ("forbidden", "these credentials may not do this"),
    404: ("not_found", "there is nothing at this path; see /docs for the API"),
    405: ("method_not_allowed", "this path does not accept this HTTP method; see /docs"),
    406: ("not_acceptable", "this resource cannot be returned in the requested format"),
    413: ("payload_too_large", "the request body is too large"),
    415: ("unsupported_media_type", "send application/json"),
}


def ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def error_response(
    status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": code, "error_description": description},
        status_code=status,
        headers=headers,
    )


def guard_refusal(scope: Scope, status: int, code: str, description: str) -> JSONResponse:
    """How the edge guards (`ehiconnect.http.asgi_guards`) refuse a request: the envelope, with
    the CORS headers a browser path's errors carry."""
    return error_response(status, code, description, error_cors_headers(Request(scope)))


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(request, exc)


def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    headers: dict[str, str] = error_cors_headers(request)
    if isinstance(exc, RateLimited | ServiceUnavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Basic realm="ehiconnect"'
    return error_response(exc.status, exc.code, exc.description, headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, default = _HTTP_CODES.get(exc.status_code, ("http_error", "the request failed"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else default
    if exc.status_code == 404 and isinstance(exc.detail, str) and exc.detail != "Not Found":
        detail = exc.detail
    return error_response(exc.status_code, code, detail, dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        # loc starts with where the value was ("body", "query", ...); only a body's is implied.
        loc = tuple(error.get("loc", ()))
        where = ".".join(str(part) for part in (loc[1:] if loc[:1] == ("body",) else loc))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_response(
        422,
        "invalid_request",
        "the request is invalid: " + "; ".join(problems) + "; fix and resend",
        error_cors_headers(request),
    )


async def _database_away(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After while PostgreSQL refuses or drops connections (answered inside the
    app, so the client's keep-alive connection survives); anything else is unexpected."""
    if not is_database_away(exc):
        raise exc
    log.warning(
        "database unavailable",
        extra={"path": request.url.path, "error": type(exc).__name__},
    )
    return api_error_response(request, database_unavailable())


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette renders this outside the user middleware, so the request id and the security
    # headers are set here.
    request_id = str(getattr(request.state, "request_id", ""))
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"path": request.url.path, "request_id": request_id},
    )
    response = error_response(
        500,
        "internal_error",
        "the server failed unexpectedly; retry later, and report the request id "
        f"{request_id} if it persists",
        headers={"x-request-id": request_id},
    )
    add_security_headers(response.headers)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for away in (*DATABASE_AWAY, ConnectorException):
        app.add_exception_handler(away, _database_away)
    app.add_exception_handler(Exception, _unexpected)
