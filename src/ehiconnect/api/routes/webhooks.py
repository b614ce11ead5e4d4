"""`/v1/webhooks/...`: an organization manages its endpoints and reads or re-sends its events.

Every route acts in the calling key's scope (`Principal.scope`: its organization, in its mode): an
endpoint or event of another organization is 404, one of the other mode 403 `api_mode_mismatch`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.api.bodies import Line, RequestBody
from ehiconnect.api.deps import PrincipalDep, RuntimeDep, SessionDep
from ehiconnect.api.envelope import ok
from ehiconnect.api.openapi import BODY_ERRORS, PRIVATE_ERRORS, error_responses
from ehiconnect.orgs.credentials import Principal
from ehiconnect.webhooks import endpoints, history, outbox
from ehiconnect.webhooks.ports import WebhookPorts
from ehiconnect.webhooks.urls import MAX_URL_LENGTH

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=PRIVATE_ERRORS)

CONFLICT = error_responses(409)


class NewEndpoint(RequestBody):
    url: str = Field(
        description="https:// URL that receives the events: http(s), a host name or a plain IP "
        f"address, no user:password@ or #fragment, at most {MAX_URL_LENGTH} characters"
    )
    event_types: list[Line] = Field(
        default_factory=list, description="Event types to receive; empty for every type"
    )


def get_webhook_ports(runtime: RuntimeDep) -> WebhookPorts:
    return runtime.webhooks


WebhooksDep = Annotated[WebhookPorts, Depends(get_webhook_ports)]


@router.post("/endpoints", status_code=201, responses=CONFLICT | BODY_ERRORS)
async def add_endpoint(
    body: NewEndpoint, session: SessionDep, ports: WebhooksDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Register an endpoint in your key's mode. The `secret` is shown only in this response."""
    created = await endpoints.add_endpoint(
        session,
        ports.clock,
        ports.cipher,
        org_id=principal.org_id,
        api_mode=principal.api_mode,
        url=body.url,
        event_types=body.event_types,
        actor=principal.actor,
    )
    return ok(created.as_json())


@router.get("/endpoints")
async def list_endpoints(session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Your endpoints in your key's mode."""
    views = await endpoints.list_endpoints(session, principal.scope)
    return ok([view.as_json() for view in views])


@router.post("/endpoints/{endpoint_id}/disable")
async def disable_endpoint(
    endpoint_id: str, session: SessionDep, ports: WebhooksDep, principal: PrincipalDep
) -> dict[str, Any]:
    return await _switch(endpoint_id, session, ports, principal, enable=False)


@router.post("/endpoints/{endpoint_id}/enable")
async def enable_endpoint(
    endpoint_id: str, session: SessionDep, ports: WebhooksDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Resume delivery; deliveries still pending are sent at once."""
    return await _switch(endpoint_id, session, ports, principal, enable=True)


@router.delete("/endpoints/{endpoint_id}")
async def remove_endpoint(
    endpoint_id: str, session: SessionDep, ports: WebhooksDep, principal: PrincipalDep
) -> dict[str, Any]:
    await endpoints.remove_endpoint(
        session, ports.clock, principal.scope, endpoint_id, actor=principal.actor
    )
    return ok({"endpoint_id": endpoint_id, "removed": True})


@router.post("/endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(
    endpoint_id: str, session: SessionDep, ports: WebhooksDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A new secret; the old one keeps signing alongside it for the grace period."""
    grace = ports.settings.secret_rotation_grace
    secret = await endpoints.rotate_secret(
        session,
        ports.clock,
        ports.cipher,
        principal.scope,
        endpoint_id,
        grace=grace,
        actor=principal.actor,
    )
    old_expire = ports.clock.now() + grace
    return ok({"endpoint_id": endpoint_id, "secret": secret, "old_secrets_expire_at": old_expire})


@router.post("/endpoints/{endpoint_id}/test", status_code=202, responses=CONFLICT)
async def send_test(
    endpoint_id: str, session: SessionDep, ports: WebhooksDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Send a `webhook.test` event to this endpoint."""
    event_id = await outbox.send_test_event(
        session, clock=ports.clock, scope=principal.scope, endpoint_id=endpoint_id
    )
    return ok({"event_id": event_id})


@router.get("/endpoints/{endpoint_id}/attempts")
async def list_attempts(
    endpoint_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The endpoint's latest delivery attempts: time, status code, latency, response excerpt."""
    await endpoints.get_endpoint(session, principal.scope, endpoint_id)
    return ok(await history.list_attempts(session, endpoint_id=endpoint_id, limit=limit))


@router.get("/events")
async def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    type: Annotated[list[str] | None, Query(description="Only these event types")] = None,
    since: Annotated[
        dt.datetime | None, Query(description="Emitted at or after (RFC 3339)")
    ] = None,
    until: Annotated[dt.datetime | None, Query(description="Emitted before (RFC 3339)")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=history.MAX_PAGE_SIZE)] = 100,
) -> dict[str, Any]:
    """Your events, oldest first, for reconciling after downtime; page with `next_cursor`."""
    page = await history.list_events(
        session,
        principal.scope,
        types=type,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return ok(page.as_json())


@router.post("/events/{event_id}/resend", status_code=202)
async def resend_event(
    event_id: str, session: SessionDep, ports: WebhooksDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Deliver the event again, with the same id, to your enabled endpoints that want it."""
    scheduled = await outbox.resend(
        session, clock=ports.clock, scope=principal.scope, event_id=event_id
    )
    return ok({"event_id": event_id, "deliveries": scheduled})


async def _switch(
    endpoint_id: str,
    session: AsyncSession,
    ports: WebhookPorts,
    principal: Principal,
    *,
    enable: bool,
) -> dict[str, Any]:
    """Turn delivery to one of the caller's endpoints on or off."""
    change = endpoints.enable_endpoint if enable else endpoints.disable_endpoint
    view = await change(session, ports.clock, principal.scope, endpoint_id, actor=principal.actor)
    return ok(view.as_json())
