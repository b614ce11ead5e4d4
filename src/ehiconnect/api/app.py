"""The ASGI application factory."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response

from ehiconnect import __version__
from ehiconnect.api.envelope import install_error_handlers
from ehiconnect.api.ratelimit import TokenBucketLimiter
from ehiconnect.api.routes import bridge, consent, exports, health, webhooks, wellknown, widget
from ehiconnect.catalog.sandbox_sync import sync_sandbox_catalog
from ehiconnect.catalog.service import CatalogSearcher
from ehiconnect.clock import Clock
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings

log = logging.getLogger("ehiconnect.api")


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The platform API; its lifespan opens the runtime (database, migrations, job queue)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime.open(settings, clock=clock) as runtime:
            if settings.sandbox.enabled:
                async with runtime.database.transaction() as session:
                    await sync_sandbox_catalog(session, settings.sandbox.base_url)
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="ehiconnect",
        version=__version__,
        description="Patient-consented retrieval of electronic health information (EHI).",
        lifespan=lifespan,
    )
    app.state.public_limiter = TokenBucketLimiter(
        per_minute=settings.api.public_rate_limit_per_minute,
        burst=settings.api.public_rate_limit_burst,
    )
    app.state.catalog_searcher = CatalogSearcher()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(wellknown.router)
    app.include_router(bridge.router, prefix="/v1")
    app.include_router(consent.router, prefix="/v1")
    app.include_router(exports.router, prefix="/v1")
    app.include_router(webhooks.router, prefix="/v1")
    app.include_router(widget.router)

    @app.middleware("http")
    async def request_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        # The path only: query strings carry public ids, OAuth codes and state.
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "request_id": request_id,
            },
        )
        return response

    return app
