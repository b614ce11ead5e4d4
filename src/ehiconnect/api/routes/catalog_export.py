"""`GET /v1/bridge/catalog/export` (private key): links to the mode's catalog as JSON arrays, and
the downloads those links point at (compat, see `ehiconnect.catalog.export`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ehiconnect.api.deps import PrincipalDep, PublicRateLimit, RuntimeDep
from ehiconnect.api.envelope import ok
from ehiconnect.api.openapi import PRIVATE_ERRORS, error_responses
from ehiconnect.catalog.export import FILES, LINK_LIFETIME, catalog_json, open_link, seal_link
from ehiconnect.errors import NotFound

router = APIRouter(prefix="/bridge", tags=["catalog"])


@router.get("/catalog/export", responses=PRIVATE_ERRORS)
async def catalog_export_links(principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    """`{"brands.json", "portals.json", "endpoints.json"}`: links, valid 60 minutes, to your
    mode's catalog as JSON arrays (test keys: the sandbox systems; live keys: the others)."""
    expires_at = runtime.clock.now() + LINK_LIFETIME
    base = runtime.settings.public_base_url.rstrip("/")
    links = {}
    for name in FILES:
        token = seal_link(runtime.cipher, mode=principal.api_mode, name=name, expires_at=expires_at)
        links[name] = f"{base}/v1/bridge/catalog/export/{name}?{urlencode({'signature': token})}"
    return ok(links)


@router.get(
    "/catalog/export/{name}",
    dependencies=[PublicRateLimit],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/json": {"schema": {"type": "array", "items": {}}}}},
        **error_responses(404, 410, 422, 429),
    },
)
async def catalog_export_file(
    name: str,
    runtime: RuntimeDep,
    signature: str = Query(max_length=1000, description="from GET /bridge/catalog/export"),
) -> StreamingResponse:
    """One catalog file as a JSON array; the link itself is the credential (like a presigned
    URL), valid until it expires."""
    if name not in FILES:
        raise NotFound(f"no catalog file {name}; the files are {', '.join(FILES)}")
    mode = open_link(runtime.cipher, signature, name=name, now=runtime.clock.now())

    async def body() -> AsyncIterator[bytes]:
        async with runtime.database.transaction() as session:
            async for chunk in catalog_json(session, mode=mode, name=name):
                yield chunk

    return StreamingResponse(
        body(),
        media_type="application/json",
        headers={
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )
