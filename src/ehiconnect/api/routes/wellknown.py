"""`/.well-known/jwks.json`: the public key health systems verify our client assertions with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ehiconnect.api.deps import RuntimeDep

router = APIRouter(tags=["well-known"])


@router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep) -> JSONResponse:
    """The platform's JWKS, to register with health systems that use private_key_jwt."""
    body: dict[str, Any] = runtime.client_signer.public_jwks()
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})
