"""`/v1/webhooks/...`: an organization manages its endpoints and reads or re-sends its events.

Every route acts for the calling key's organization in the key's mode (test or live).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from ehiconnect.api.bodies import Line, RequestBody
from ehiconnect.api.deps import PrincipalDep, RuntimeDep, SessionDep
from ehiconnect.api.envelope import ok
from ehiconnect.api.openapi import BODY_ERRORS, PRIVATE_ERRORS, error_responses
from ehiconnect.orgs.credentials import Principal
from ehiconnect.webhooks import endpoints, history, outbox
from ehiconnect.webhooks.tasks import webhook_settings
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


@router.post("/endpoints", status_code=201, responses=CONFLICT | BODY_ERRORS)
async def add_endpoint(
    body: NewEndpoint, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Register an endpoint in your key's mode. The `secret` is shown only in this response."""
    created = await endpoints.add_endpoint(
        session,
        runtime.clock,
        runtime.cipher,
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
    views = await endpoints.list_endpoints(
        session, org_id=principal.org_id, api_mode=principal.api_mode
    )
    return ok([view.as_json() for view in views])


@router.post("/endpoints/{endpoint_id}/disable")
async def disable_endpoint(
    endpoint_id: str, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    view = await endpoints.disable_endpoint(
        session, runtime.clock, endpoint_id, actor=principal.actor, **_scope(principal)
    )
    return ok(view.as_json())


@router.post("/endpoints/{endpoint_id}/enable")
async def enable_endpoint(
    endpoint_id: str, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Resume delivery; deliveries still pending are sent at once."""
    view = await endpoints.enable_endpoint(
        session, runtime.clock, endpoint_id, actor=principal.actor, **_scope(principal)
    )
    return ok(view.as_json())


@router.delete("/endpoints/{endpoint_id}")
async def remove_endpoint(
    endpoint_id: str, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    await endpoints.remove_endpoint(
        session, runtime.clock, endpoint_id, actor=principal.actor, **_scope(principal)
    )
    return ok({"endpoint_id": endpoint_id, "removed": True})


@router.post("/endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(
    endpoint_id: str, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A new secret; the old one keeps signing alongside it for the grace period."""
    settings = webhook_settings(runtime.settings)
    secret = await endpoints.rotate_secret(
        session,
        runtime.clock,
        runtime.cipher,
        endpoint_id,
        grace=settings.secret_rotation_grace,
        actor=principal.actor,
        **_scope(principal),
    )
    old_expire = runtime.clock.now() + settings.secret_rotation_grace
    return ok({"endpoint_id": endpoint_id, "secret": secret, "old_secrets_expire_at": old_expire})


@router.post("/endpoints/{endpoint_id}/test", status_code=202, responses=CONFLICT)
async def send_test(
    endpoint_id: str, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Send a `webhook.test` event to this endpoint."""
    event_id = await outbox.send_test_event(
        session,
        jobs=runtime.jobs,
        clock=runtime.clock,
        endpoint_id=endpoint_id,
        **_scope(principal),
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
    await endpoints.get_endpoint(session, endpoint_id, **_scope(principal))
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
        org_id=principal.org_id,
        api_mode=principal.api_mode,
        types=type,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return ok(page.as_json())


@router.post("/events/{event_id}/resend", status_code=202)
async def resend_event(
    event_id: str, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Deliver the event again, with the same id, to your enabled endpoints that want it."""
    scheduled = await outbox.resend(
        session, jobs=runtime.jobs, clock=runtime.clock, event_id=event_id, **_scope(principal)
    )
    return ok({"event_id": event_id, "deliveries": scheduled})


def _scope(principal: Principal) -> dict[str, str]:
    return {"org_id": principal.org_id, "api_mode": principal.api_mode}
