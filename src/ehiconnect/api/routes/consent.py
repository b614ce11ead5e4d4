"""The patient-facing consent routes: catalog, connect, reconnect, callback (DESIGN §1), and the
widget's fallback read of a sign-in's result with its result handle."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import Field

from ehiconnect.api.bodies import Line, RequestBody
from ehiconnect.api.cors import allow_origin
from ehiconnect.api.deps import (
    ConnectionsDep,
    ConsentDep,
    PrincipalDep,
    PublicRateLimit,
    SessionDep,
)
from ehiconnect.api.envelope import error_response, ok
from ehiconnect.api.openapi import BODY_ERRORS, PRIVATE_ERRORS, PUBLIC_ERRORS, error_responses
from ehiconnect.catalog.hits import search_response
from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.catalog.service import (
    CatalogSearcher,
    brand_views,
    portal_view,
    resolve_brand,
    resolve_portal,
)
from ehiconnect.connections.lifecycle import revoke_connection
from ehiconnect.consent.flow import (
    ConnectRequest,
    FlowFailure,
    complete_flow,
    result_kept_for_widget,
    start_flow,
)
from ehiconnect.consent.ports import ConsentPorts
from ehiconnect.consent.result import Ready
from ehiconnect.consent.result_handles import redeem_result
from ehiconnect.errors import ApiError, Forbidden, InvalidRequest
from ehiconnect.orgs.origins import origin_allowed, origin_of
from ehiconnect.orgs.service import org_for_public_id
from ehiconnect.scope import OrgScope
from ehiconnect.widget.callback_page import (
    CALLBACK_PAGE_CSP,
    failure_result,
    render_callback_page,
)

router = APIRouter(prefix="/bridge", tags=["consent"])

# Where the patient's browser is sent: failures after the organization is known are an HTML page
# for the patient (or a redirect to the registered redirect_uri with `error`), not the envelope.
PATIENT_PAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": f"{text}: an HTML page telling the patient what went wrong, or a 302 to "
        "the registered redirect_uri with `error` and `error_description`",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    for status, text in ((400, "The sign-in cannot start or finish"), (403, "Refused"))
}

PUBLIC_ID = Query(description="the organization's public_test_… or public_live_… id")
RESULT_CHALLENGE = Query(
    default=None,
    max_length=64,
    description="BASE64URL(SHA-256(result_handle)), 43 characters: lets the widget read the "
    "result with POST /bridge/connect/result when the popup cannot post it back",
)


def sign_in_ending(
    redirect_uri: str | None = Query(default=None),
    external_id: str | None = Query(default=None, max_length=255),
    external_state: str | None = Query(default=None, max_length=1024),
    result_challenge: str | None = RESULT_CHALLENGE,
) -> ConnectRequest:
    """Where a sign-in ends and what it carries back: alike for /connect and /reconnect, which
    add what the patient connects to."""
    return ConnectRequest(
        redirect_uri=redirect_uri,
        external_id=external_id,
        external_state=external_state,
        result_challenge=result_challenge,
    )


SignInEnding = Annotated[ConnectRequest, Depends(sign_in_ending)]
# /connect and /reconnect: a 302 to the health system, or the patient's page on failure.
START_ROUTE: dict[str, Any] = {
    "response_class": RedirectResponse,
    "status_code": 302,
    "dependencies": [PublicRateLimit],
    "responses": PUBLIC_ERRORS | PATIENT_PAGE_ERRORS,
}


class ResultRead(RequestBody):
    result_handle: Line = Field(max_length=200, description="the handle whose challenge started it")


SortValue = float | Annotated[Line, Field(max_length=300)]


class CatalogSearch(RequestBody):
    query: Line = Field(default="", max_length=200)
    city: Line | None = Field(default=None, max_length=100)
    state: Line | None = Field(default=None, max_length=50)
    searchAfter: (
        Annotated[list[SortValue], Field(max_length=3)]
        | Annotated[Line, Field(max_length=700)]
        | None
    ) = Field(
        default=None,
        description="the `sort` array of the last hit of the previous page (or its values "
        "joined by commas); omit for the first page",
    )
    limit: int = Field(default=20, ge=1, le=100)


@router.options("/connect/result", include_in_schema=False)
@router.options("/catalog/search", include_in_schema=False)
@router.options("/catalog", include_in_schema=False)
@router.options("/org", include_in_schema=False)
async def preflight(request: Request, session: SessionDep, public_id: str = PUBLIC_ID) -> Response:
    org, mode = await org_for_public_id(session, public_id)
    response = Response(status_code=204)
    allow_origin(request, response, org, mode)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@router.post(
    "/catalog/search", dependencies=[PublicRateLimit], responses=PUBLIC_ERRORS | BODY_ERRORS
)
async def search_catalog(
    request: Request,
    response: Response,
    body: CatalogSearch,
    session: SessionDep,
    public_id: str = PUBLIC_ID,
    api_mode: str | None = Query(default=None),
) -> dict[str, Any]:
    """Search health systems by name, alias (typo-tolerant), city and state; paged.

    The answer has Elasticsearch's shape, as Fasten Connect's does: `hits.total.value`,
    `hits.hits[{_id, _score, sort, _source}]`, `aggregations.by_platform_type.buckets`."""
    started = time.perf_counter()
    org, mode = await org_for_public_id(session, public_id, api_mode)
    allow_origin(request, response, org, mode)
    searcher: CatalogSearcher = request.app.state.catalog_searcher
    page, brands = await searcher.search(
        session,
        mode,
        query=body.query,
        city=body.city,
        state=body.state,
        limit=body.limit,
        search_after=body.searchAfter,
    )
    took_ms = round((time.perf_counter() - started) * 1000)
    return ok(search_response(page, {brand["id"]: brand for brand in brands}, took_ms))


@router.get("/catalog", dependencies=[PublicRateLimit], responses=PUBLIC_ERRORS)
async def read_catalog(
    request: Request,
    response: Response,
    session: SessionDep,
    public_id: str = PUBLIC_ID,
    api_mode: str | None = Query(default=None),
    brand_id: str | None = Query(default=None),
    portal_id: str | None = Query(default=None),
) -> dict[str, Any]:
    """One brand (with its portals and endpoints) or one portal (with its endpoints)."""
    org, mode = await org_for_public_id(session, public_id, api_mode)
    allow_origin(request, response, org, mode)
    if bool(brand_id) == bool(portal_id):
        raise InvalidRequest("give exactly one of brand_id or portal_id")
    sandbox = mode == "test"
    if brand_id:
        brand = await resolve_brand(session, brand_id)
        if brand.sandbox != sandbox:
            raise Forbidden(
                f"brand {brand.id} is not available in {mode} mode", code="api_mode_mismatch"
            )
        [view] = await brand_views(session, [brand.id])
        return ok(view)
    portal = await resolve_portal(session, portal_id or "")
    if portal.sandbox != sandbox:
        raise Forbidden(
            f"portal {portal.id} is not available in {mode} mode", code="api_mode_mismatch"
        )
    endpoints = {
        eid: e for eid in portal.endpoint_ids if (e := await session.get(CatalogEndpoint, eid))
    }
    return ok(portal_view(portal, endpoints))


@router.get("/connect", **START_ROUTE)
async def connect(
    request: Request,
    consent: ConsentDep,
    ending: SignInEnding,
    public_id: str = PUBLIC_ID,
    brand_id: str | None = Query(default=None),
    portal_id: str | None = Query(default=None),
    endpoint_id: str | None = Query(default=None),
) -> Response:
    """Start a patient's sign-in at a health system: 302 to its authorize URL."""
    return await _start(
        request,
        consent,
        public_id,
        dataclasses.replace(
            ending, brand_id=brand_id, portal_id=portal_id, endpoint_id=endpoint_id
        ),
    )


@router.get("/reconnect", **START_ROUTE)
async def reconnect(
    request: Request,
    consent: ConsentDep,
    ending: SignInEnding,
    public_id: str = PUBLIC_ID,
    reconnect_org_connection_id: str = Query(),
) -> Response:
    """Re-authorize an existing connection in place: the org_connection_id stays the same."""
    return await _start(
        request,
        consent,
        public_id,
        dataclasses.replace(ending, reconnect_connection_id=reconnect_org_connection_id),
    )


async def _start(
    request: Request,
    consent: ConsentPorts,
    public_id: str,
    connect_request: ConnectRequest,
) -> Response:
    async with consent.database.transaction() as session:
        org, mode = await org_for_public_id(session, public_id)
    referer_origin = origin_of(request.headers.get("referer"))
    widget_origin = (
        referer_origin if referer_origin and origin_allowed(referer_origin, org, mode) else None
    )
    connect_request = dataclasses.replace(connect_request, widget_origin=widget_origin)
    try:
        url = await start_flow(
            consent,
            OrgScope(org_id=org.org_id, api_mode=mode),
            connect_request,
            redirect_uris=org.redirect_uris,
        )
    except (ApiError, FlowFailure) as exc:
        error = exc.code if isinstance(exc, ApiError) else exc.error
        description = exc.description
        status = exc.status
        if connect_request.redirect_uri and connect_request.redirect_uri in org.redirect_uris:
            return RedirectResponse(
                _with_query(
                    connect_request.redirect_uri,
                    error=error,
                    error_description=description,
                    external_state=connect_request.external_state,
                ),
                status_code=302,
            )
        return _callback_page(failure_result(error, description), widget_origin, status)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@router.get(
    "/callback", response_class=HTMLResponse, responses=PATIENT_PAGE_ERRORS | error_responses(422)
)
async def callback(
    consent: ConsentDep,
    state: str | None = Query(default=None),
    code: str | None = Query(default=None),
    error: str | None = Query(default=None),
    error_description: str | None = Query(default=None),
) -> Response:
    """Where the health system sends the patient back: finish the connection."""
    try:
        success = await complete_flow(
            consent, state=state, code=code, error=error, error_description=error_description
        )
    except FlowFailure as failure:
        flow = failure.flow
        if flow is not None and flow.redirect_uri:
            return RedirectResponse(
                _with_query(
                    flow.redirect_uri,
                    error=failure.error,
                    error_description=failure.description,
                    external_state=flow.external_state,
                ),
                status_code=302,
            )
        return _callback_page(
            failure_result(failure.error, failure.description),
            flow.widget_origin if flow else None,
            failure.status,
            close_without_opener=result_kept_for_widget(failure),
        )
    flow, connection = success.flow, success.connection
    if flow.redirect_uri:
        return RedirectResponse(
            _with_query(
                flow.redirect_uri,
                org_connection_id=connection["org_connection_id"],
                connection_status=connection["status"],
                platform_type=connection["platform_type"],
                brand_id=connection["catalog_brand_id"],
                portal_id=connection["catalog_portal_id"],
                endpoint_id=connection["catalog_endpoint_id"],
                external_id=success.event.get("external_id"),
                external_state=flow.external_state,
            ),
            status_code=302,
        )
    return _callback_page(
        success.result,
        flow.widget_origin,
        200,
        close_without_opener=flow.result_handle_hash is not None,
    )


@router.post(
    "/connect/result",
    dependencies=[PublicRateLimit],
    responses=PUBLIC_ERRORS | BODY_ERRORS | error_responses(409),
)
async def connect_result(
    request: Request,
    consent: ConsentDep,
    body: ResultRead,
    public_id: str = PUBLIC_ID,
) -> JSONResponse:
    """The widget's fallback when the popup cannot post its result (the portal severed
    `window.opener`): `pending` until the flow finishes, then its result, once."""
    origin = request.headers.get("origin")
    headers = {"Cache-Control": "no-store"}
    if origin:
        # Errors hold nothing to protect; readable, the widget can say what went wrong.
        headers |= {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    try:
        async with consent.database.transaction() as session:
            org, mode = await org_for_public_id(session, public_id)
        outcome = await redeem_result(
            consent, org, mode, result_handle=body.result_handle, origin=origin
        )
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.description, headers)
    data = outcome.result if isinstance(outcome, Ready) else outcome.as_data()
    return JSONResponse(ok(data), headers=headers)


@router.delete("/org_connection/{org_connection_id}", responses=PRIVATE_ERRORS)
async def delete_connection(
    org_connection_id: str, connections: ConnectionsDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Revoke: revoke tokens at the source where supported, destroy them, emit the event."""
    view = await revoke_connection(connections, principal.scope, org_connection_id)
    return ok(view)


def _callback_page(
    result: dict[str, object],
    origin: str | None,
    status: int,
    *,
    close_without_opener: bool = False,
) -> HTMLResponse:
    return HTMLResponse(
        render_callback_page(result, origin, close_without_opener=close_without_opener),
        status_code=status,
        headers={"Content-Security-Policy": CALLBACK_PAGE_CSP, "Cache-Control": "no-store"},
    )


def _with_query(url: str, **params: object) -> str:
    parts = urlsplit(url)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))
