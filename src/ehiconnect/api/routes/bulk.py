"""The FHIR Bulk Data view of an export task (`/v1/fhir/…`).

Everything under `/v1/fhir/` speaks FHIR, errors included: they are OperationOutcome resources
(`application/fhir+json`), not the platform's JSON envelope, so a Bulk Data client written from
the specification can read them. `FhirRoute` turns the platform's errors (authentication, rate
limits, unknown tasks, validation) into that shape; a catch-all route answers unknown paths and
methods the same way.

Status (Bulk Data Access IG, "Bulk Data Status Request" and "Delete a Bulk Data Request"):
pending → 202 with `X-Progress` and `Retry-After`; success → 200 and the manifest, `Expires` an
HTTP-date; failed → 500 with the failure; files past retention → 410; cancelled or deleted → 404,
like a task that never existed. `DELETE` answers 202 once, then 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ehiconnect.api.deps import PrincipalDep, RuntimeDep
from ehiconnect.api.ranges import format_http_date
from ehiconnect.db.unavailable import database_unavailable, is_database_away
from ehiconnect.errors import ApiError, NotFound, RateLimited, ServiceUnavailable, Unauthorized
from ehiconnect.exports import telemetry
from ehiconnect.exports.audit_trail import record_task_action
from ehiconnect.exports.endings import download_url, platform_type_of
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.service import get_task
from ehiconnect.exports.states import REMOVED
from ehiconnect.fhir.outcome import issue_code_for_status, operation_outcome
from ehiconnect.vocabulary import ExportStatus

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
RETRY_AFTER_SECONDS = 5
# The envelope's `error` code travels in the issue's `details` under this system.
ERROR_CODE_SYSTEM = "urn:ehiconnect:error"


def outcome_response(
    status: int,
    description: str,
    *,
    error: str,
    headers: dict[str, str] | None = None,
    issue_code: str | None = None,
) -> JSONResponse:
    """An OperationOutcome answer: `description` in diagnostics, the envelope code in details."""
    outcome = operation_outcome(
        diagnostics=description, code=issue_code or issue_code_for_status(status)
    )
    outcome["issue"][0]["details"] = {"coding": [{"system": ERROR_CODE_SYSTEM, "code": error}]}
    return JSONResponse(outcome, status_code=status, headers=headers, media_type=FHIR_JSON)


class FhirRoute(APIRoute):
    """A route whose errors are OperationOutcomes, including those raised by its dependencies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                try:
                    return await handler(request)
                except Exception as exc:
                    if is_database_away(exc):
                        raise database_unavailable() from exc
                    raise
            except ApiError as exc:
                headers: dict[str, str] = {}
                if isinstance(exc, RateLimited | ServiceUnavailable) and exc.retry_after:
                    headers["Retry-After"] = str(exc.retry_after)
                if isinstance(exc, Unauthorized):
                    headers["WWW-Authenticate"] = 'Basic realm="ehiconnect"'
                return outcome_response(
                    exc.status, exc.description, error=exc.code, headers=headers
                )
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', '')}"
                    for error in exc.errors()
                )
                return outcome_response(
                    422, f"the request is invalid: {problems}", error="invalid_request"
                )
            except StarletteHTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, str) else "the request failed"
                return outcome_response(
                    exc.status_code, detail, error="http_error", headers=dict(exc.headers or {})
                )
            except Exception:
                request_id = str(getattr(request.state, "request_id", ""))
                log.exception("unhandled error", extra={"path": request.url.path})
                return outcome_response(
                    500,
                    "the server failed unexpectedly; retry later, and report the request id "
                    f"{request_id} if it persists",
                    error="internal_error",
                )

        return handle


router = APIRouter(route_class=FhirRoute, tags=["bulk-data"])


@router.get("/fhir/bulkstatus/{task_id}")
async def bulk_status(task_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """Bulk Data status: 202 + `X-Progress`/`Retry-After` while running, then the manifest."""
    ports = runtime.exports
    async with ports.database.transaction() as session:
        task = await get_task(session, principal.scope, task_id)
    if task.status == ExportStatus.PENDING:
        text = f"{task.phase}: {task.progress.get('resources', 0)} resources"
        return Response(
            status_code=202,
            headers={"X-Progress": text, "Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if task.status in REMOVED:
        raise _removed(task)
    if task.status == ExportStatus.EXPIRED:
        return outcome_response(
            410,
            f"export {task.task_id} passed its retention and its files were deleted; "
            "request a new export",
            error="gone",
        )
    if task.status == ExportStatus.FAILED:
        return outcome_response(
            500,
            task.failure_description or "the export failed",
            error=task.failure_reason or "export_failed",
            issue_code="processing",
        )
    return JSONResponse(_manifest(ports.public_base_url, task), headers=_expires(task))


@router.delete("/fhir/bulkstatus/{task_id}")
async def bulk_delete(task_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """Cancel a running export, or delete a finished one's files now; then the task is gone."""
    ports = runtime.exports
    cancelled_platform: str | None = None
    async with ports.database.transaction() as session:
        task = await get_task(session, principal.scope, task_id, for_update=True)
        if task.status in REMOVED:
            raise _removed(task)
        if task.status == ExportStatus.PENDING:
            # The worker sees it at its next progress write and stops.
            task.status = ExportStatus.CANCELLED
            task.completed_at = ports.clock.now()
            cancelled_platform = await platform_type_of(session, task)
        else:
            for key in (task.file_key, task.error_key):
                if key:
                    await ports.blobs.delete(key)
            task.status = ExportStatus.DELETED
        await record_task_action(
            session, ports.clock, task, "export.deleted", actor=principal.actor
        )
    if cancelled_platform is not None:
        telemetry.export_ended(task, cancelled_platform)
    return Response(status_code=202)


_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/fhir/{path:path}", methods=_ALL_METHODS, include_in_schema=False)
async def fhir_fallback(path: str, request: Request) -> Response:
    """Unknown paths and methods under `/v1/fhir/`, answered as OperationOutcomes."""
    here = f"/fhir/{path}"
    allowed: set[str] = set()
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is not fhir_fallback:
            allowed |= (route.methods or set()) if route.path_regex.match(here) else set()
    if allowed:
        return outcome_response(
            405,
            f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}",
            error="method_not_allowed",
            headers={"Allow": ", ".join(sorted(allowed))},
            issue_code="not-supported",
        )
    return outcome_response(
        404, "there is nothing at this path; see /docs for the API", error="not_found"
    )


def _removed(task: ExportTask) -> NotFound:
    what = "cancelled" if task.status == ExportStatus.CANCELLED else "deleted"
    return NotFound(f"export {task.task_id} was {what}; request a new export for fresh data")


def _expires(task: ExportTask) -> dict[str, str]:
    return {"Expires": format_http_date(task.expires_at)} if task.expires_at else {}


def _manifest(public_base_url: str, task: ExportTask) -> dict[str, Any]:
    url = download_url(public_base_url, task.task_id, task.file_id or "")
    by_type: dict[str, int] = task.stats.get("total_by_resource_type", {})
    return {
        "transactionTime": (task.started_at or task.created_at).isoformat(),
        "request": f"{public_base_url.rstrip('/')}/v1/bridge/fhir/ehi-export",
        "requiresAccessToken": True,
        "output": [
            {"type": kind, "url": f"{url}?type={kind}", "count": count}
            for kind, count in sorted(by_type.items())
        ],
        "error": (
            [
                {
                    "type": "OperationOutcome",
                    "url": download_url(public_base_url, task.task_id, "errors"),
                    "count": task.error_count,
                }
            ]
            if task.error_key
            else []
        ),
        "extension": {
            "ehiconnect-file": {"url": url, "sha256": task.sha256, "size": task.file_size}
        },
    }
