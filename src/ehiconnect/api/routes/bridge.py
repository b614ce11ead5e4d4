"""`/v1/bridge/...`: the organization card and connections (DESIGN §1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from ehiconnect.api.cors import allow_origin
from ehiconnect.api.deps import PrincipalDep, PublicRateLimit, SessionDep
from ehiconnect.api.envelope import ok
from ehiconnect.api.openapi import PRIVATE_ERRORS, PUBLIC_ERRORS
from ehiconnect.connections.service import connection_view, get_connection
from ehiconnect.orgs.service import org_for_public_id

router = APIRouter(prefix="/bridge", tags=["bridge"])


@router.get("/org", dependencies=[PublicRateLimit], responses=PUBLIC_ERRORS)
async def organization_card(
    request: Request,
    response: Response,
    session: SessionDep,
    public_id: str = Query(description="the organization's public_test_… or public_live_… id"),
    api_mode: str | None = Query(default=None, description="test or live; must match public_id"),
) -> dict[str, Any]:
    """What the widget shows about the organization: name, logo, privacy policy."""
    org, mode = await org_for_public_id(session, public_id, api_mode)
    allow_origin(request, response, org, mode)
    return ok(
        {
            "id": org.org_id,
            "name": org.name,
            "logo": org.logo_url,
            "privacy_policy_url": org.privacy_policy_url,
            "website": org.website,
            "api_mode": mode,
        }
    )


@router.get("/org_connection/{org_connection_id}", responses=PRIVATE_ERRORS)
async def read_connection(
    org_connection_id: str, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One of your connections, by `org_connection_id` (compat fields)."""
    connection = await get_connection(session, principal.scope, org_connection_id)
    return ok(connection_view(connection))
