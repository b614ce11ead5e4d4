"""The ASGI application factory."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ehiconnect import __version__
from ehiconnect.api.deps import authenticate_before_body
from ehiconnect.api.envelope import guard_refusal, install_error_handlers
from ehiconnect.api.ratelimit_store import SharedRateLimiter
from ehiconnect.api.routes import (
    bridge,
    catalog_export,
    consent,
    exports,
    health,
    support,
    webhooks,
    wellknown,
    widget,
)
from ehiconnect.api.routes import metrics as metrics_route
from ehiconnect.catalog.builtin import sync_builtin_catalogs
from ehiconnect.catalog.service import CatalogSearcher
from ehiconnect.clock import Clock
from ehiconnect.console.app import mount_console
from ehiconnect.db.pools import ProcessRole
from ehiconnect.http.asgi_guards import (
    BodyLimit,
    SecurityHeaders,
    UrlGuard,
    accepted_request_id,
    path_under,
    refuse_by_path,
)
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.tracing import instrument_app

log = logging.getLogger("ehiconnect.api")


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The platform API; its lifespan opens the runtime (database, migrations, job queue)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime.open(settings, clock=clock, role=ProcessRole.API) as runtime:
            if settings.sandbox.enabled:
                async with runtime.database.transaction() as session:
                    await sync_builtin_catalogs(
                        session,
                        settings.catalog.builtin_sources,
                        base_url=settings.sandbox.base_url,
                    )
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="ehiconnect",
        version=__version__,
        description="Patient-consented retrieval of electronic health information (EHI).",
        lifespan=lifespan,
    )
    app.state.public_limiter = SharedRateLimiter(
        per_minute=settings.api.public_rate_limit_per_minute,
        burst=settings.api.public_rate_limit_burst,
    )
    app.state.catalog_searcher = CatalogSearcher()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    app.include_router(wellknown.router)
    app.include_router(bridge.router, prefix="/v1")
    app.include_router(catalog_export.router, prefix="/v1")
    app.include_router(consent.router, prefix="/v1")
    app.include_router(exports.router, prefix="/v1")
    app.include_router(webhooks.router, prefix="/v1")
    app.include_router(support.router, prefix="/v1")
    app.include_router(widget.router)
    mount_console(app)  # /console: pages and static files

    # The FHIR side (Bulk Data) answers errors as OperationOutcomes, the rest the envelope.
    edge_refusal = refuse_by_path(path_under("/v1/fhir"), guard_refusal)
    # Added last = runs first: the log sees every answer, guards' refusals included.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.api.max_body_bytes,
        refuse=edge_refusal,
        before_body=authenticate_before_body,
    )
    app.add_middleware(UrlGuard, refuse=edge_refusal)
    if settings.api.trusted_proxies:
        # uvicorn's own walk of X-Forwarded-For (from the right, skipping trusted hops), with
        # our list; the servers we start have theirs off (proxy_headers=False).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.api.trusted_proxies)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestLog)
    instrument_app(app, settings.otel)  # outermost when tracing is configured, else nothing
    return app


class RequestLog:
    """One log line per request, and its `x-request-id` (the client's if plain) on the answer.

    Pure ASGI, so streamed downloads pass through unbuffered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(Headers(scope=scope).get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The path only: query strings carry public ids, OAuth codes and state.
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "request_id": request_id,
                },
            )
