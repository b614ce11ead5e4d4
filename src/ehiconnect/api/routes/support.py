"""`POST /v1/support/request`: the widget's "I can't find my health system" (DESIGN §1, compat).

Public (the organization's public id, its registered origins), rate limited like the other
browser-facing routes, every field bounded. The request is stored and announced to the
organization as the `patient.request_health_system` webhook event.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field, field_validator

from ehiconnect.api.bodies import Line, RequestBody
from ehiconnect.api.cors import allow_origin
from ehiconnect.api.deps import PublicRateLimit, RuntimeDep, SessionDep
from ehiconnect.api.envelope import ok
from ehiconnect.api.openapi import BODY_ERRORS, PUBLIC_ERRORS
from ehiconnect.orgs.service import org_for_public_id
from ehiconnect.scope import OrgScope
from ehiconnect.support.service import (
    MAX_BODY,
    MAX_EMAIL,
    MAX_EXTERNAL_ID,
    MAX_NAME,
    MAX_SUBJECT,
    SupportAsk,
    record_support_request,
)

router = APIRouter(prefix="/support", tags=["support"])

PUBLIC_ID = Query(description="the organization's public_test_… or public_live_… id")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


class SupportRequestBody(RequestBody):
    email: Line = Field(max_length=MAX_EMAIL, description="where the patient wants an answer")
    name: Line = Field(min_length=1, max_length=MAX_NAME, description="the patient's name")
    subject: Line = Field(
        min_length=1, max_length=MAX_SUBJECT, description="e.g. the health system's name"
    )
    body: str = Field(
        min_length=1,
        max_length=MAX_BODY,
        description="what the patient asks for (free text; line breaks allowed)",
    )
    external_id: Line | None = Field(
        default=None, max_length=MAX_EXTERNAL_ID, description="the widget's external-id"
    )

    @field_validator("email")
    @classmethod
    def _email_shaped(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("must be an email address such as patient@example.com")
        return value


@router.options("/request", include_in_schema=False)
async def preflight(request: Request, session: SessionDep, public_id: str = PUBLIC_ID) -> Response:
    org, mode = await org_for_public_id(session, public_id)
    response = Response(status_code=204)
    allow_origin(request, response, org, mode)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@router.post(
    "/request",
    status_code=201,
    dependencies=[PublicRateLimit],
    responses=PUBLIC_ERRORS | BODY_ERRORS,
)
async def request_support(
    request: Request,
    response: Response,
    body: SupportRequestBody,
    session: SessionDep,
    runtime: RuntimeDep,
    public_id: str = PUBLIC_ID,
) -> dict[str, Any]:
    """Ask the organization to add a health system (or for help): stored, and sent to its
    webhooks as `patient.request_health_system`."""
    org, mode = await org_for_public_id(session, public_id)
    allow_origin(request, response, org, mode)
    stored = await record_support_request(
        session,
        OrgScope(org_id=org.org_id, api_mode=mode),
        clock=runtime.clock,
        ask=SupportAsk(
            email=body.email,
            name=body.name,
            subject=body.subject,
            body=body.body,
            external_id=body.external_id,
        ),
    )
    return ok({"id": stored.request_id, "created_at": stored.created_at.isoformat()})
