"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ehiconnect import __version__
from ehiconnect.api.deps import RuntimeDep
from ehiconnect.api.envelope import error_response, ok
from ehiconnect.api.openapi import error_responses
from ehiconnect.errors import ServiceUnavailable
from ehiconnect.readiness import RETRY_AFTER_SECONDS, ReadinessChecker
from ehiconnect.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", responses=error_responses(503))
async def healthz(runtime: RuntimeDep) -> dict[str, Any]:
    """200 when the API can reach its database; 503 otherwise."""
    try:
        async with runtime.database.transaction() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(
            f"the database is unreachable ({type(exc).__name__}); check EHICONNECT_DATABASE_URL"
        ) from exc
    return ok({"status": "ok", "version": __version__})


@router.get("/readyz", responses=error_responses(503), response_model=None)
async def readyz(request: Request, runtime: RuntimeDep) -> dict[str, Any] | JSONResponse:
    """200 with what was checked when this process can serve: database reachable, schema at the
    expected migration, export storage writable. 503 naming what is wrong otherwise (with
    `Retry-After`). The result is reused for a second, so frequent probes cost nothing."""
    report = await _checker(request, runtime).check()
    if not report.ready:
        return error_response(
            503,
            "not_ready",
            report.description(),
            {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
        )
    return ok({"status": "ready", "version": __version__, "checks": report.checks})


def _checker(request: Request, runtime: Runtime) -> ReadinessChecker:
    checker = getattr(request.app.state, "readiness", None)
    if not isinstance(checker, ReadinessChecker):
        checker = ReadinessChecker(runtime.database, runtime.blobs)
        request.app.state.readiness = checker
    return checker
