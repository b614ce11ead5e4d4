"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from ehiconnect import __version__
from ehiconnect.api.deps import RuntimeDep
from ehiconnect.api.envelope import ok
from ehiconnect.api.openapi import error_responses
from ehiconnect.errors import ServiceUnavailable

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
