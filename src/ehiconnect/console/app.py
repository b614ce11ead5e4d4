"""The platform console's pages, mounted at `/console` on the platform API.

    mount_console(app)   # in api/app.py

Operators see every organization, customers their own; both in the mode they chose. Actions
(revoke a connection, resend a delivery) go through the same services as the API and are written
to the audit log with the console account as the actor.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from ehiconnect.connections.lifecycle import revoke_connection
from ehiconnect.console import manage
from ehiconnect.console.queries import records
from ehiconnect.console.queries.failures import load_failures
from ehiconnect.console.queries.overview import load_overview
from ehiconnect.console.site import PostedBy, Who, kit, new_router
from ehiconnect.console.site import database_of as _database
from ehiconnect.console.site import runtime_of as _runtime
from ehiconnect.console.viewer import Viewer
from ehiconnect.consolekit.sessions import SignedIn
from ehiconnect.errors import InvalidRequest, NotFound
from ehiconnect.ids import as_api_mode
from ehiconnect.orgs.credentials import Principal
from ehiconnect.orgs.service import list_orgs
from ehiconnect.scope import OrgScope
from ehiconnect.vocabulary import ConnectionStatus
from ehiconnect.webhooks.outbox import resend

PERIODS = (1, 7, 14, 30, 90)
EXPORT_STATUSES = ("pending", "success", "failed", "cancelled", "expired", "deleted")
DELIVERY_STATUSES = ("pending", "succeeded", "failed", "cancelled")
_CODE = re.compile(r"^(none|[1-5][0-9]{2})$")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


router = new_router()
kit.add_auth_routes(router)
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def mount_console(app: FastAPI) -> None:
    kit.install(app, router)
    app.include_router(manage.router)


def _period(days: int, default: int) -> int:
    return days if days in PERIODS else default


def _choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


def _ident(value: str | None, name: str) -> str | None:
    if not value:
        return None
    if not _ID.match(value):
        raise InvalidRequest(f"{name} is not an id this console shows")
    return value


# ---- overview and failure review -----------------------------------------------------------------


@router.get("/")
async def overview(request: Request, who: Who, days: int = 14) -> Response:
    runtime = _runtime(request)
    period = _period(days, 14)
    async with runtime.database.transaction() as db:
        data = await load_overview(db, Viewer.of(who), runtime.clock.now(), period)
    return kit.render(
        request, who, "console/overview.html", {"o": data, "days": period, "periods": PERIODS}
    )


@router.get("/failures")
async def failures(request: Request, who: Who, days: int = 7) -> Response:
    runtime = _runtime(request)
    period = _period(days, 7)
    async with runtime.database.transaction() as db:
        review = await load_failures(db, Viewer.of(who), runtime.clock.now(), period)
    return kit.render(
        request, who, "console/failures.html", {"r": review, "days": period, "periods": PERIODS}
    )


@router.get("/failures/consent")
async def consent_failures(
    request: Request, who: Who, kind: str, endpoint: str | None = None, days: int = 7
) -> Response:
    runtime = _runtime(request)
    period = _period(days, 7)
    kind = _ident(kind, "kind") or ""
    async with runtime.database.transaction() as db:
        cases = await records.consent_cases(
            db,
            Viewer.of(who),
            runtime.clock.now(),
            kind=kind,
            endpoint=_ident(endpoint, "endpoint"),
            days=period,
        )
    return kit.render(
        request, who, "console/consent_cases.html", {"cases": cases, "kind": kind, "days": period}
    )


# ---- connections ---------------------------------------------------------------------------------


@router.get("/connections")
async def connections(
    request: Request,
    who: Who,
    status: str | None = None,
    external_id: Annotated[str | None, Query(max_length=256)] = None,
    page: int = 1,
) -> Response:
    async with _database(request).transaction() as db:
        found = await records.list_connections(
            db,
            Viewer.of(who),
            status=_choice(status, tuple(ConnectionStatus), "status"),
            external_id=external_id or None,
            page=page,
        )
    return kit.render(
        request,
        who,
        "console/connections.html",
        {
            "p": found,
            "status": status or "",
            "external_id": external_id or "",
            "statuses": tuple(ConnectionStatus),
        },
    )


async def _connection_or_404(db: Any, who: SignedIn, org_connection_id: str) -> dict[str, Any]:
    found = await records.get_connection(db, Viewer.of(who), org_connection_id)
    if found is None:
        raise NotFound(
            f"no connection {org_connection_id[:64]} in your {who.session.api_mode} mode; "
            "check the mode, or pick one from the list"
        )
    return found


@router.get("/connections/{org_connection_id}")
async def connection(request: Request, who: Who, org_connection_id: str) -> Response:
    runtime = _runtime(request)
    async with runtime.database.transaction() as db:
        found = await _connection_or_404(db, who, org_connection_id)
        history = await records.consent_history(db, org_connection_id)
        exports = await records.list_exports(
            db,
            Viewer.of(who),
            runtime.clock.now(),
            status=None,
            reason=None,
            endpoint=None,
            connection=org_connection_id,
            days=None,
            page=1,
        )
    return kit.render(
        request,
        who,
        "console/connection.html",
        {
            "c": found,
            "history": history,
            "exports": exports.rows,
            "revoked": request.query_params.get("revoked") == "1",
        },
    )


@router.post("/connections/{org_connection_id}/revoke")
async def revoke(request: Request, who: PostedBy, org_connection_id: str) -> Response:
    runtime = _runtime(request)
    async with runtime.database.transaction() as db:
        found = await _connection_or_404(db, who, org_connection_id)
    # The API's revoke service, acting for the connection's organization.
    principal = Principal(
        org_id=found["org_id"],
        api_mode=as_api_mode(found["api_mode"]),
        public_id=f"console:{who.user.user_id}",
        key_id=0,
    )
    await revoke_connection(runtime.connections, principal.scope, org_connection_id)
    await kit.audit(
        request,
        who,
        "console.connection_revoked",
        org_id=found["org_id"],
        org_connection_id=org_connection_id,
    )
    return kit.redirect(f"/connections/{org_connection_id}?revoked=1")


# ---- exports -------------------------------------------------------------------------------------


@router.get("/exports")
async def exports(
    request: Request,
    who: Who,
    status: str | None = None,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    endpoint: Annotated[str | None, Query(max_length=128)] = None,
    connection: Annotated[str | None, Query(max_length=64)] = None,
    days: int | None = None,
    page: int = 1,
) -> Response:
    runtime = _runtime(request)
    async with runtime.database.transaction() as db:
        found = await records.list_exports(
            db,
            Viewer.of(who),
            runtime.clock.now(),
            status=_choice(status, EXPORT_STATUSES, "status"),
            reason=_ident(reason, "reason"),
            endpoint=_ident(endpoint, "endpoint"),
            connection=_ident(connection, "connection"),
            days=_period(days, 7) if days else None,
            page=page,
        )
    return kit.render(
        request,
        who,
        "console/exports.html",
        {
            "p": found,
            "status": status or "",
            "reason": reason or "",
            "statuses": EXPORT_STATUSES,
            "filtered": bool(status or reason or endpoint or connection or days),
        },
    )


async def _export_or_404(request: Request, who: SignedIn, task_id: str) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.database.transaction() as db:
        found = await records.get_export(db, Viewer.of(who), runtime.clock.now(), task_id)
        if found is not None and found["status"] == "pending":
            found["staged_errors"] = await records.export_errors(db, task_id)
    if found is None:
        raise NotFound(
            f"no export {task_id[:64]} in your {who.session.api_mode} mode; "
            "check the mode, or pick one from the list"
        )
    return found


@router.get("/exports/{task_id}")
async def export(request: Request, who: Who, task_id: str) -> Response:
    found = await _export_or_404(request, who, task_id)
    return kit.render(request, who, "console/export.html", {"t": found})


@router.get("/exports/{task_id}/progress")
async def export_progress(request: Request, who: Who, task_id: str) -> Response:
    """The live part of the export page: replaced every 2 s while the export runs."""
    found = await _export_or_404(request, who, task_id)
    return kit.render(request, who, "console/_export_progress.html", {"t": found})


@router.get("/exports/{task_id}/errors")
async def export_error_report(request: Request, who: Who, task_id: str) -> Response:
    """The export's error report (OperationOutcome lines about resources it could not fetch)."""
    found = await _export_or_404(request, who, task_id)
    if not found["error_key"] or found["status"] != "success":
        raise NotFound("this export has no error report (no resource failed, or it expired)")
    await kit.audit(
        request,
        who,
        "console.error_report_read",
        org_id=found["org_id"],
        org_connection_id=found["org_connection_id"],
        task_id=task_id,
    )
    return StreamingResponse(
        _runtime(request).blobs.open_reader(found["error_key"]),
        media_type="application/fhir+ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="{task_id}-errors.ndjson"',
            "Cache-Control": "no-store",
        },
    )


# ---- webhooks ------------------------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks(request: Request, who: Who) -> Response:
    runtime = _runtime(request)
    viewer = Viewer.of(who)
    async with runtime.database.transaction() as db:
        endpoints = await records.list_endpoints(db, viewer)
        recent = await records.list_deliveries(
            db,
            viewer,
            runtime.clock.now(),
            endpoint=None,
            status=None,
            code=None,
            days=None,
            page=1,
        )
        orgs = await list_orgs(db) if viewer.operator else []
    done = request.query_params.get("done")
    return kit.render(
        request,
        who,
        "console/webhooks.html",
        {
            "endpoints": endpoints,
            "p": recent,
            "orgs": orgs[:500],
            "done": done if done in ("enabled", "disabled") else None,
        },
    )


@router.get("/webhooks/deliveries")
async def deliveries(
    request: Request,
    who: Who,
    endpoint: Annotated[str | None, Query(max_length=64)] = None,
    status: str | None = None,
    code: Annotated[str | None, Query(max_length=8)] = None,
    days: int | None = None,
    page: int = 1,
) -> Response:
    if code and not _CODE.match(code):
        raise InvalidRequest("code must be an HTTP status code (100-599) or none")
    runtime = _runtime(request)
    async with runtime.database.transaction() as db:
        found = await records.list_deliveries(
            db,
            Viewer.of(who),
            runtime.clock.now(),
            endpoint=_ident(endpoint, "endpoint"),
            status=_choice(status, DELIVERY_STATUSES, "status"),
            code=code or None,
            days=_period(days, 7) if days else None,
            page=page,
        )
    return kit.render(
        request,
        who,
        "console/deliveries.html",
        {
            "p": found,
            "status": status or "",
            "statuses": DELIVERY_STATUSES,
            "code": code or "",
            "tested": request.query_params.get("tested") == "1",
        },
    )


async def _delivery_or_404(request: Request, who: SignedIn, delivery_id: int) -> dict[str, Any]:
    async with _database(request).transaction() as db:
        found = await records.get_delivery(db, Viewer.of(who), delivery_id)
        if found is not None:
            found["attempts_log"] = await records.delivery_attempts(db, delivery_id)
    if found is None:
        raise NotFound(
            f"no webhook delivery {delivery_id} in your {who.session.api_mode} mode; "
            "check the mode, or pick one from the list"
        )
    return found


@router.get("/webhooks/deliveries/{delivery_id}")
async def delivery(request: Request, who: Who, delivery_id: DeliveryId) -> Response:
    found = await _delivery_or_404(request, who, delivery_id)
    return kit.render(
        request,
        who,
        "console/delivery.html",
        {"d": found, "resent": request.query_params.get("resent") == "1"},
    )


@router.post("/webhooks/deliveries/{delivery_id}/resend")
async def resend_delivery(request: Request, who: PostedBy, delivery_id: DeliveryId) -> Response:
    found = await _delivery_or_404(request, who, delivery_id)
    runtime = _runtime(request)
    async with runtime.database.transaction() as db:
        scheduled = await resend(
            db,
            clock=runtime.clock,
            scope=OrgScope(org_id=found["org_id"], api_mode=as_api_mode(who.session.api_mode)),
            event_id=found["event_id"],
            endpoint_id=found["endpoint_id"],
        )
    await kit.audit(
        request,
        who,
        "console.webhook_resent",
        org_id=found["org_id"],
        detail={
            "event_id": found["event_id"],
            "endpoint_id": found["endpoint_id"],
            "scheduled": scheduled,
        },
    )
    return kit.redirect(f"/webhooks/deliveries/{delivery_id}?resent=1")
