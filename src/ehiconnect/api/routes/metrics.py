"""`GET /metrics`: this API process's Prometheus metrics (text exposition format).

Open unless `api.metrics_token` is set; then only `Authorization: Bearer <token>` reads it (the
figures reveal volumes per health system). Gauges kept in PostgreSQL (queue depth, webhook
backlog) are read at scrape time, at most once every few seconds.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ehiconnect import metrics
from ehiconnect.api.deps import RuntimeDep
from ehiconnect.errors import Unauthorized

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def prometheus_metrics(request: Request, runtime: RuntimeDep) -> Response:
    token = runtime.settings.api.metrics_token
    if token is not None:
        offered = request.headers.get("authorization", "")
        scheme, _, credential = offered.partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), expected
        ):
            raise Unauthorized(
                "the metrics need `Authorization: Bearer <api.metrics_token>`",
                code="metrics_token_required",
            )
    await metrics.DATABASE_GAUGES.refresh(runtime.database)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
