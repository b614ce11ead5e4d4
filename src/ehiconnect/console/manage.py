"""The platform console's management pages: webhook endpoints, API keys, the catalog (operators).

Every action is a CSRF-protected POST that calls the same service as the CLI (`ehiconnect
webhooks`, `ehiconnect keys`), scoped to the viewer's organization and mode (another
organization's endpoint answers 404), with the console account as the audit log's actor. A new
secret or private key is shown once, in the answer to the POST that made it (never stored in
clear, never in a URL, `Cache-Control: no-store`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.catalog.service import CatalogSearcher, resolve_endpoint
from ehiconnect.console.site import PostedBy, Who, kit, new_router, runtime_of
from ehiconnect.console.viewer import Viewer
from ehiconnect.consolekit.models import ROLE_OPERATOR
from ehiconnect.consolekit.sessions import SignedIn
from ehiconnect.consolekit.web import actor_of
from ehiconnect.errors import Forbidden, InvalidRequest, NotFound
from ehiconnect.ids import as_api_mode
from ehiconnect.orgs import service as orgs
from ehiconnect.scope import OrgScope
from ehiconnect.webhooks import endpoints, outbox

router = new_router()
CATALOG_PAGE = 25
_ENDPOINT_ID = re.compile(r"^[0-9a-f-]{36}$")
_CATALOG_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _endpoint_id(value: str) -> str:
    if not _ENDPOINT_ID.match(value):
        raise NotFound("no webhook endpoint has this id; pick one from the list")
    return value


async def _endpoint_scope(db: AsyncSession, viewer: Viewer, endpoint_id: str) -> OrgScope:
    """Where the viewer acts on an endpoint: a customer in its organization, an operator in the
    endpoint's; in the viewer's mode either way (`OrgScope.admit` then judges the endpoint)."""
    org_id = viewer.org_id or (await endpoints.owner_scope(db, endpoint_id)).org_id
    return OrgScope(org_id=org_id, api_mode=as_api_mode(viewer.api_mode))


async def _target_org(request: Request, who: SignedIn) -> str:
    """The organization an action is for: a customer's own; an operator names one in the form."""
    viewer = Viewer.of(who)
    if viewer.org_id is not None:
        return viewer.org_id
    org_id = (await kit.field(request, "org_id", max_length=64)).strip()
    if not org_id:
        raise InvalidRequest("choose the organization")
    return org_id


def _show_once(
    request: Request,
    who: SignedIn,
    title: str,
    facts: list[tuple[str, str]],
    secret: str,
    note: str,
    back: str,
) -> Response:
    return kit.render(
        request,
        who,
        "console/secret.html",
        {"title": title, "facts": facts, "secret": secret, "note": note, "back": back},
    )


# ---- webhook endpoints ---------------------------------------------------------------------------


@router.post("/webhooks/endpoints")
async def add_endpoint(request: Request, who: PostedBy) -> Response:
    runtime = runtime_of(request)
    org_id = await _target_org(request, who)
    url = (await kit.field(request, "url", max_length=2048)).strip()
    form = await kit.form(request)
    raw_events = form.get("events")
    types = (
        [t.strip() for t in raw_events.split(",") if t.strip()]
        if isinstance(raw_events, str) and len(raw_events) <= 1024
        else []
    )
    async with runtime.database.transaction() as db:
        created = await endpoints.add_endpoint(
            db,
            runtime.clock,
            runtime.cipher,
            org_id=org_id,
            api_mode=who.session.api_mode,
            url=url,
            event_types=types,
            actor=actor_of(who),
        )
    return _show_once(
        request,
        who,
        "Webhook endpoint added",
        [("Endpoint", created.endpoint_id), ("URL", url), ("Mode", who.session.api_mode)],
        created.secret,
        "Verify webhooks with this signing secret (Standard Webhooks). Store it now: it is not "
        "shown again.",
        "/webhooks",
    )


async def _switch(request: Request, who: SignedIn, endpoint_id: str, *, enable: bool) -> Response:
    runtime = runtime_of(request)
    viewer = Viewer.of(who)
    change = endpoints.enable_endpoint if enable else endpoints.disable_endpoint
    async with runtime.database.transaction() as db:
        scope = await _endpoint_scope(db, viewer, _endpoint_id(endpoint_id))
        await change(db, runtime.clock, scope, endpoint_id, actor=actor_of(who))
    return kit.redirect(f"/webhooks?done={'enabled' if enable else 'disabled'}")


@router.post("/webhooks/endpoints/{endpoint_id}/disable")
async def disable_endpoint(request: Request, who: PostedBy, endpoint_id: str) -> Response:
    return await _switch(request, who, endpoint_id, enable=False)


@router.post("/webhooks/endpoints/{endpoint_id}/enable")
async def enable_endpoint(request: Request, who: PostedBy, endpoint_id: str) -> Response:
    return await _switch(request, who, endpoint_id, enable=True)


@router.post("/webhooks/endpoints/{endpoint_id}/rotate-secret")
async def rotate_endpoint_secret(request: Request, who: PostedBy, endpoint_id: str) -> Response:
    runtime = runtime_of(request)
    viewer = Viewer.of(who)
    grace = runtime.settings.webhooks.secret_rotation_grace
    async with runtime.database.transaction() as db:
        scope = await _endpoint_scope(db, viewer, _endpoint_id(endpoint_id))
        secret = await endpoints.rotate_secret(
            db, runtime.clock, runtime.cipher, scope, endpoint_id, grace=grace, actor=actor_of(who)
        )
    until = runtime.clock.now() + grace
    return _show_once(
        request,
        who,
        "New signing secret",
        [("Endpoint", endpoint_id), ("Old secrets sign until", kit.env.filters["when"](until))],
        secret,
        "Webhooks are signed with the new secret and the old ones until then. Store it now: it "
        "is not shown again.",
        "/webhooks",
    )


@router.post("/webhooks/endpoints/{endpoint_id}/test")
async def send_test(request: Request, who: PostedBy, endpoint_id: str) -> Response:
    runtime = runtime_of(request)
    viewer = Viewer.of(who)
    async with runtime.database.transaction() as db:
        scope = await _endpoint_scope(db, viewer, _endpoint_id(endpoint_id))
        event_id = await outbox.send_test_event(
            db, clock=runtime.clock, scope=scope, endpoint_id=endpoint_id
        )
    await kit.audit(
        request,
        who,
        "console.webhook_test_sent",
        org_id=scope.org_id,
        detail={"endpoint_id": endpoint_id, "event_id": event_id},
    )
    return kit.redirect(f"/webhooks/deliveries?endpoint={endpoint_id}&tested=1")


# ---- keys ----------------------------------------------------------------------------------------


@router.get("/keys")
async def keys(request: Request, who: Who) -> Response:
    viewer = Viewer.of(who)
    async with runtime_of(request).database.transaction() as db:
        listed = (
            await orgs.list_orgs(db)
            if viewer.operator
            else [await orgs.get_org(db, viewer.org_id or "-")]
        )
        rows = [
            {
                "org_id": org.org_id,
                "name": org.name,
                "public_ids": await orgs.public_ids(db, org.org_id),
            }
            for org in listed[:500]
        ]
    return kit.render(request, who, "console/keys.html", {"orgs": rows})


@router.post("/keys/rotate")
async def rotate_key(request: Request, who: PostedBy) -> Response:
    runtime = runtime_of(request)
    viewer = Viewer.of(who)
    org_id = (await kit.field(request, "org_id", max_length=64)).strip()
    if viewer.org_id is not None and org_id != viewer.org_id:
        raise NotFound("no organization of yours has this id")
    hours = runtime.settings.keys.rotation_grace_hours
    async with runtime.database.transaction() as db:
        pair = await orgs.rotate_key(
            db,
            runtime.clock,
            OrgScope(org_id=org_id, api_mode=as_api_mode(viewer.api_mode)),
            grace=dt.timedelta(hours=hours),
            actor=actor_of(who),
        )
    return _show_once(
        request,
        who,
        "New private key",
        [("Organization", org_id), ("Mode", viewer.api_mode), ("Public id", pair.public_id)],
        pair.private_key,
        f"The previous private key keeps working for {hours:g} h, then stops. Store the new one "
        "now: it is not shown again.",
        "/keys",
    )


# ---- catalog (operators) -------------------------------------------------------------------------


def _operator(who: SignedIn) -> None:
    if who.user.role != ROLE_OPERATOR:
        raise Forbidden("the catalog pages are for operators", code="operators_only")


@router.get("/catalog")
async def catalog(
    request: Request, who: Who, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    _operator(who)
    searcher: CatalogSearcher = request.app.state.catalog_searcher
    async with runtime_of(request).database.transaction() as db:
        page, brands = await searcher.search(
            db,
            as_api_mode(who.session.api_mode),
            query=q,
            city=None,
            state=None,
            limit=CATALOG_PAGE,
        )
    return kit.render(
        request, who, "console/catalog.html", {"q": q, "total": page.total, "brands": brands}
    )


def endpoint_settings(endpoint: CatalogEndpoint) -> list[tuple[str, Any]]:
    """How the platform connects to an endpoint; a client secret only as whether it is set."""
    return [
        ("FHIR base URL", endpoint.url),
        ("Platform type", endpoint.platform_type),
        ("Status", endpoint.status),
        ("FHIR version", endpoint.fhir_version),
        ("Sandbox", "yes" if endpoint.sandbox else "no"),
        ("Authorization endpoint", endpoint.authorization_endpoint or "—"),
        ("Token endpoint", endpoint.token_endpoint or "—"),
        ("Revocation endpoint", endpoint.revoke_endpoint or "—"),
        ("Client id", endpoint.client_id or "—"),
        ("Client authentication", endpoint.client_auth_method),
        ("Client secret", "set" if endpoint.client_secret_ct else "not set"),
        ("Scopes", endpoint.scopes),
        ("aud required", "yes" if endpoint.aud_required else "no"),
        ("Private network allowed", "yes" if endpoint.allow_private_network else "no"),
        ("Source", endpoint.source),
    ]


@router.get("/catalog/endpoints/{endpoint_id}")
async def catalog_endpoint(request: Request, who: Who, endpoint_id: str) -> Response:
    _operator(who)
    if not _CATALOG_ID.match(endpoint_id):
        raise NotFound("no catalog endpoint has this id")
    async with runtime_of(request).database.transaction() as db:
        endpoint = await resolve_endpoint(db, endpoint_id)
    return kit.render(
        request,
        who,
        "console/catalog_endpoint.html",
        {"e": endpoint, "settings": endpoint_settings(endpoint)},
    )
