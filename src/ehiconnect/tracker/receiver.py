"""The tracker's HTTP surface: `build_tracker_app(open_tracker)`.

`open_tracker` opens the TrackerRuntime inside the server's event loop (its lifespan), e.g.
`lambda: open_tracker(settings, database_url, data_dir)` (`ehiconnect.tracker.process`).

    POST /stitch-events   the customer's backend forwards a widget event (Bearer token)
    POST /webhooks        the platform's signed webhooks (Standard Webhooks)
    GET  /fhir/{type}     search the built-in FHIR store (patient, code, date, _count, _offset)
    GET  /fhir/{type}/{id}  (a Binary whose payload was lifted: its bytes, unless FHIR JSON is
                          asked for with Accept)
    The FHIR routes hold health data: they answer only with `Authorization: Bearer
    <fhir_api_token>`, and not at all while no token is configured.
    GET  /healthz
    GET  /readyz          database (the tracker's schema at its head) and storage: 200, or 503
                          naming what is wrong
    /console/...          the tracker's console (its own login; `tracker.console`)

Both POST endpoints record what they received and enqueue the work in the same transaction, then
answer at once: the slow parts (confirming, exporting, downloading) run as jobs.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from ehiconnect.http.asgi_guards import (
    edge_middleware,
    envelope_refusal,
    path_under,
    refuse_by_path,
)
from ehiconnect.readiness import RETRY_AFTER_SECONDS
from ehiconnect.tracker.consent_log import (
    InvalidWidgetEvent,
    parse_widget_event,
    remember_widget_event,
)
from ehiconnect.tracker.console import PREFIX as CONSOLE_PREFIX
from ehiconnect.tracker.console import build_tracker_console
from ehiconnect.tracker.export_steps import consent_received, schedule
from ehiconnect.tracker.fhir_query import (
    BadFhirRequest,
    check_resource_type,
    check_text,
    search_query,
)
from ehiconnect.tracker.http_errors import (
    EXCEPTION_HANDLERS,
    fhir_error,
    fhir_response,
    guarded,
)
from ehiconnect.tracker.intake import Rejected, check_webhook, record_webhook
from ehiconnect.tracker.lift_step import stored_data
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import TrackerSettings
from ehiconnect.tracker.sinks.fhir_store import as_searchset, read, search

log = logging.getLogger(__name__)


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": code, "error_description": description}, status_code=status
    )


def build_tracker_app(
    open_tracker: Callable[[], AbstractAsyncContextManager[TrackerRuntime]],
    settings: TrackerSettings,
) -> Starlette:
    endpoints = _Endpoints(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_tracker() as runtime:
            endpoints.opened = runtime
            yield
            endpoints.opened = None

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/stitch-events", guarded(endpoints.stitch_events), methods=["POST"]),
            Route("/webhooks", guarded(endpoints.webhooks), methods=["POST"]),
            Route("/fhir/{resource_type}", guarded(endpoints.fhir_search), methods=["GET"]),
            Route(
                "/fhir/{resource_type}/{resource_id}", guarded(endpoints.fhir_read), methods=["GET"]
            ),
            Route("/healthz", guarded(healthz), methods=["GET"]),
            Route("/readyz", guarded(endpoints.readyz), methods=["GET"]),
            Mount(CONSOLE_PREFIX, app=build_tracker_console(endpoints.current)),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=edge_middleware(
            max_body_bytes=settings.max_body_bytes,
            refuse=refuse_by_path(path_under("/fhir"), envelope_refusal),
        ),
    )


class _Endpoints:
    """The routes' handlers, over the runtime the app's lifespan opened."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self.opened: TrackerRuntime | None = None

    def current(self) -> TrackerRuntime:
        if self.opened is None:
            raise RuntimeError("the tracker app is not started (its lifespan opens the runtime)")
        return self.opened

    def fhir_refusal(self, request: Request) -> Response | None:
        expected = self.settings.fhir_api_token.get_secret_value()
        if not expected:
            return _error(
                403,
                "fhir_api_disabled",
                "the tracker's FHIR API is off: set tracker.fhir_api_token and send it as "
                "Authorization: Bearer <token>",
            )
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _error(401, "unauthorized", "send Authorization: Bearer <fhir_api_token>")
        return None

    async def stitch_events(self, request: Request) -> Response:
        tracker = self.current()
        expected = self.settings.stitch_events_token.get_secret_value()
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return _error(401, "unauthorized", "send Authorization: Bearer <stitch_events_token>")
        body = await request.body()  # bounded by tracker.max_body_bytes at the edge
        try:
            payload = orjson.loads(body)
            event = parse_widget_event(payload)
        except (orjson.JSONDecodeError, InvalidWidgetEvent) as exc:
            return _error(400, "invalid_event", str(exc))
        now = tracker.clock.now()
        async with tracker.database.transaction() as session:
            fresh = await remember_widget_event(
                session, event, payload, now, self.settings.widget_event_cache_hours
            )
            if fresh:
                for artifact in event.accounts:
                    await consent_received(
                        session, tracker, artifact, "widget", now, event.event_type, event.event_at
                    )
        ids = [a.org_connection_id for a in event.accounts]
        return JSONResponse(
            {"success": True, "data": {"recorded": fresh, "org_connection_ids": ids}},
            status_code=202 if fresh else 200,
        )

    async def webhooks(self, request: Request) -> Response:
        tracker = self.current()
        body = await request.body()  # bounded by tracker.max_body_bytes at the edge
        verdict = check_webhook(
            body,
            dict(request.headers),
            [s.get_secret_value() for s in self.settings.webhook_secrets],
            now=int(tracker.clock.now().timestamp()),
            tolerance_seconds=self.settings.webhook_tolerance_seconds,
        )
        if isinstance(verdict, Rejected):
            log.warning("webhook rejected", extra={"reason": verdict.code})
            return _error(verdict.status, verdict.code, verdict.description)
        if verdict.nul_replaced:
            log.warning(
                "webhook NUL characters replaced with U+FFFD",
                extra={"webhook_id": verdict.webhook_id, "count": verdict.nul_replaced},
            )
        async with tracker.database.transaction() as session:
            fresh = await record_webhook(session, verdict, tracker.clock.now())
            if fresh:
                await schedule(session, tracker, "process_webhook", webhook_id=verdict.webhook_id)
        return JSONResponse({"success": True, "data": {"duplicate": not fresh}})

    async def fhir_search(self, request: Request) -> Response:
        if (refused := self.fhir_refusal(request)) is not None:
            return refused
        tracker = self.current()
        params = request.query_params
        try:
            query = search_query(
                request.path_params["resource_type"],
                patient=params.get("patient") or params.get("subject"),
                code=params.get("code"),
                dates=params.getlist("date"),
                count=params.get("_count"),
                offset=params.get("_offset"),
            )
        except BadFhirRequest as bad:
            return fhir_error(bad.status, bad.code, bad.diagnostics)
        total, found = await search(tracker.database, query)
        return fhir_response(as_searchset(total, found, tracker.clock.now()))

    async def fhir_read(self, request: Request) -> Response:
        if (refused := self.fhir_refusal(request)) is not None:
            return refused
        tracker = self.current()
        kind, rid = request.path_params["resource_type"], request.path_params["resource_id"]
        try:
            check_resource_type(kind)
            check_text("the resource id", rid)
        except BadFhirRequest as bad:
            return fhir_error(bad.status, bad.code, bad.diagnostics)
        found = await read(tracker.database, kind, rid)
        if found is None:
            return fhir_error(404, "not-found", f"{kind}/{rid} is not in the tracker's FHIR store")
        pointer = stored_data(found) if kind == "Binary" else None
        if pointer is not None and not _wants_fhir_json(request.headers.get("accept", "")):
            key, size, sha256 = pointer
            return StreamingResponse(
                tracker.blobs.open_reader(key),
                media_type=str(found.get("contentType") or "application/octet-stream"),
                headers={"Content-Length": str(size), "X-Content-SHA256": sha256},
            )
        return fhir_response(found)

    async def readyz(self, request: Request) -> Response:
        """The tracker's database (its own schema at head) and its storage, as the platform's
        /readyz checks its own."""
        report = await self.current().readiness.check()
        if not report.ready:
            refusal = _error(503, "not_ready", report.description())
            refusal.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return refusal
        return JSONResponse({"success": True, "data": {"status": "ready", "checks": report.checks}})


async def healthz(request: Request) -> Response:
    return JSONResponse({"success": True, "data": {"status": "ok"}})


def _wants_fhir_json(accept: str) -> bool:
    """FHIR's Binary read: the resource as JSON only when asked for; else its content."""
    return "fhir+json" in accept or "application/json" in accept
