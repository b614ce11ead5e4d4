"""Support requests: store what the patient asked for and announce it to the organization.

The row and its `patient.request_health_system` webhook event are written in one transaction (the
outbox), so a request is never stored without its event or announced without being stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.clock import Clock
from ehiconnect.scope import OrgScope
from ehiconnect.support.models import SupportRequest
from ehiconnect.webhooks.outbox import emit
from ehiconnect.webhooks.payloads import RequestHealthSystem

MAX_EMAIL = 254  # RFC 5321's limit on a forward path
MAX_NAME = 200
MAX_SUBJECT = 200
MAX_BODY = 5000
MAX_EXTERNAL_ID = 200


@dataclass(frozen=True)
class SupportAsk:
    """What the patient typed, already validated by the caller (API body model or CLI)."""

    email: str
    name: str
    subject: str
    body: str
    external_id: str | None = None


def announcement(request: SupportRequest) -> RequestHealthSystem:
    """The `patient.request_health_system` event of a stored request (docs/webhooks.md)."""
    return RequestHealthSystem(
        email=request.email,
        name=request.name,
        subject=request.subject,
        body=request.body,
        external_id=request.external_id,
        org_id=request.org_id,
        support_request_id=request.request_id,
    )


async def record_support_request(
    session: AsyncSession,
    scope: OrgScope,
    *,
    clock: Clock,
    ask: SupportAsk,
) -> SupportRequest:
    """Store the request to the scope's organization, in its mode, and emit its webhook event, in
    the caller's transaction."""
    request = SupportRequest(
        request_id=str(uuid.uuid4()),
        org_id=scope.org_id,
        api_mode=scope.api_mode,
        email=ask.email,
        name=ask.name,
        subject=ask.subject,
        body=ask.body,
        external_id=ask.external_id,
        event_id="",
        created_at=clock.now(),
    )
    request.event_id = await emit(
        session,
        clock=clock,
        org_id=scope.org_id,
        api_mode=scope.api_mode,
        event=announcement(request),
    )
    session.add(request)
    await session.flush()
    return request


def support_request_view(request: SupportRequest) -> dict[str, Any]:
    """A stored request as an operator reads it."""
    return {
        "id": request.request_id,
        "org_id": request.org_id,
        "api_mode": request.api_mode,
        "email": request.email,
        "name": request.name,
        "subject": request.subject,
        "body": request.body,
        "external_id": request.external_id,
        "event_id": request.event_id,
        "created_at": request.created_at.isoformat(),
    }


async def list_support_requests(
    session: AsyncSession, scopes: Collection[OrgScope], *, limit: int = 100
) -> list[SupportRequest]:
    """The newest requests first, of the organizations and modes in `scopes`."""
    wanted = [(scope.org_id, scope.api_mode) for scope in scopes]
    if not wanted:
        return []
    return await _newest(
        session,
        select(SupportRequest).where(
            tuple_(SupportRequest.org_id, SupportRequest.api_mode).in_(wanted)
        ),
        limit,
    )


async def list_every_support_request(
    session: AsyncSession, *, limit: int = 100
) -> list[SupportRequest]:
    """The newest requests first, of every organization: the operator's view."""
    return await _newest(session, select(SupportRequest), limit)


async def _newest(
    session: AsyncSession, query: Select[SupportRequest], limit: int
) -> list[SupportRequest]:
    ordered = query.order_by(SupportRequest.created_at.desc(), SupportRequest.request_id)
    return list((await session.scalars(ordered.limit(limit))).all())
