"""The SMART standalone launch, from `/bridge/connect` to `/bridge/callback`.

`start_flow` runs four steps: checks the request (`check_request`), finds the endpoint (for a
reconnect, the connection's, read within the caller's `OrgScope`), discovers its SMART
configuration, then mints `state` and a PKCE verifier, records the flow and returns the authorize
URL. `complete_flow` claims the flow by
its state (once only, before it expires), exchanges the code, and on success creates (or, for a
reconnect, updates in place) the connection, seals its tokens, writes the consent record and the
`patient.connection_success` event in one transaction.

Every failure comes back as a `FlowFailure` with an `error` code and a human `error_description`,
which the callback hands to the widget or to the caller's redirect URI.

A flow the widget started with a `result_challenge` also keeps its result (success, in the same
transaction as the connection; failure, before the callback answers) for the widget to poll with
its result handle when the popup lost `window.opener` (`ehiconnect.consent.result`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit
from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.catalog.service import check_mode, resolve_for_connect
from ehiconnect.clock import Clock
from ehiconnect.connections.consent_records import record_consent
from ehiconnect.connections.events import announce, connection_event_data
from ehiconnect.connections.service import connection_view, get_connection
from ehiconnect.connections.tokens import endpoint_auth, store_tokens
from ehiconnect.consent import telemetry
from ehiconnect.consent.authorize import authorize_url, downgrade_to_v1, grant_problem
from ehiconnect.consent.models import ConsentFlow
from ehiconnect.consent.pkce import new_state, new_verifier, s256_challenge
from ehiconnect.consent.ports import ConsentPorts
from ehiconnect.consent.result import challenge_hash, connection_result, failure_result
from ehiconnect.consent.result_handles import ensure_handle_unused, record_result
from ehiconnect.db.database import Database
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError, Forbidden, InvalidRequest, NotFound, SourceError
from ehiconnect.ids import new_connection_id
from ehiconnect.scope import OrgScope
from ehiconnect.smart import client as smart
from ehiconnect.vault import Sealed
from ehiconnect.vocabulary import ConnectionStatus, ConsentEvent, EventType

CALLBACK_PATH = "/v1/bridge/callback"


@dataclass(frozen=True)
class ConnectRequest:
    brand_id: str | None = None
    portal_id: str | None = None
    endpoint_id: str | None = None
    redirect_uri: str | None = None
    external_id: str | None = None
    external_state: str | None = None
    reconnect_connection_id: str | None = None
    widget_origin: str | None = None
    result_challenge: str | None = None
    """BASE64URL(SHA-256(result handle)) from the widget, to poll for the result with the handle."""


class FlowFailure(Exception):
    def __init__(
        self, error: str, description: str, *, flow: ConsentFlow | None = None, status: int = 400
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.flow = flow
        self.status = status


@dataclass
class FlowSuccess:
    flow: ConsentFlow
    connection: dict[str, Any]
    event: dict[str, Any] = field(default_factory=dict)
    result: dict[str, object] = field(default_factory=dict)
    """What the widget is told: posted by the callback page, or read with the result handle."""


def result_kept_for_widget(failure: FlowFailure) -> bool:
    """Whether a failure is recorded as its flow's result. A replayed state says nothing about
    how the flow went, so it never replaces (or stands in for) the real outcome."""
    flow = failure.flow
    if flow is None or flow.result_handle_hash is None:
        return False
    return failure.error != "state_reused"


def callback_url(public_base_url: str) -> str:
    return public_base_url.rstrip("/") + CALLBACK_PATH


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class FlowTarget:
    """Where a flow signs the patient in, and what the connection it makes will name."""

    endpoint_id: str
    fhir_base: str
    allow_private: bool
    brand_id: str | None
    portal_id: str | None


async def start_flow(
    ports: ConsentPorts,
    scope: OrgScope,
    request: ConnectRequest,
    *,
    redirect_uris: Collection[str],
) -> str:
    """Record a new flow for `scope` and return the health system's authorize URL.

    `redirect_uris` are the organization's registered ones: a flow may end only at one of them
    (or in the widget)."""
    result_handle_hash = check_request(request, redirect_uris)
    async with ports.database.transaction() as session:
        target = await _find_target(session, scope, request)
    configuration = await _discover_endpoint(ports.http, target)
    url = await _record_flow(ports, scope, request, target, configuration, result_handle_hash)
    telemetry.consent_started(
        scope.org_id,
        target.endpoint_id,
        scope.api_mode,
        reconnect=bool(request.reconnect_connection_id),
    )
    return url


def check_request(request: ConnectRequest, redirect_uris: Collection[str]) -> str | None:
    """Refuse a request that cannot finish; the hash of its result handle, when it has one."""
    if request.redirect_uri is not None and request.redirect_uri not in redirect_uris:
        raise Forbidden(
            "redirect_uri is not registered for this organization; register it with "
            "`ehiconnect orgs create --redirect-uri` (or omit it to finish in the widget)",
            code="redirect_uri_not_registered",
        )
    if request.result_challenge is None:
        return None
    if request.redirect_uri is not None:
        raise InvalidRequest(
            "result_challenge is for flows that finish in the widget's popup; with a "
            "redirect_uri the result comes back in the redirect's query"
        )
    return challenge_hash(request.result_challenge)


async def _find_target(
    session: AsyncSession, scope: OrgScope, request: ConnectRequest
) -> FlowTarget:
    """The endpoint of the connection to reconnect, or the one the widget's ids pick; refused
    unless the platform operator has registered a client with it."""
    if request.reconnect_connection_id:
        existing = await get_connection(session, scope, request.reconnect_connection_id)
        endpoint = await session.get(CatalogEndpoint, existing.catalog_endpoint_id)
        if endpoint is None:
            raise NotFound("the connection's endpoint is no longer in the catalog")
        check_mode(endpoint, scope.api_mode)
        brand_id, portal_id = existing.catalog_brand_id, existing.catalog_portal_id
    else:
        resolved = await resolve_for_connect(
            session,
            scope.api_mode,
            brand_id=request.brand_id,
            portal_id=request.portal_id,
            endpoint_id=request.endpoint_id,
        )
        endpoint = resolved.endpoint
        brand_id = resolved.brand.id if resolved.brand else request.brand_id
        portal_id = resolved.portal.id if resolved.portal else request.portal_id
    if not endpoint.client_id:
        raise Forbidden(
            f"endpoint {endpoint.id} has no client registration yet; the platform operator "
            "must configure it (`ehiconnect catalog configure`)",
            code="endpoint_not_configured",
        )
    return FlowTarget(
        endpoint_id=endpoint.id,
        fhir_base=endpoint.url,
        allow_private=endpoint.reachable_privately(scope.api_mode),
        brand_id=brand_id,
        portal_id=portal_id,
    )


async def _discover_endpoint(
    http: httpx.AsyncClient, target: FlowTarget
) -> smart.SmartConfiguration:
    """The endpoint's SMART configuration, refused unless it supports PKCE S256."""
    try:
        configuration = await smart.discover(
            http, target.fhir_base, allow_private=target.allow_private
        )
    except SourceError as exc:
        raise FlowFailure(
            "endpoint_unreachable",
            f"the health system could not be reached to start sign-in ({exc}); try again later",
            status=502,
        ) from None
    if configuration.code_challenge_methods and "S256" not in configuration.code_challenge_methods:
        raise FlowFailure(
            "endpoint_unsupported",
            "the health system does not support PKCE S256, which ehiconnect requires",
            status=502,
        )
    return configuration


def requested_scope(endpoint_scopes: str, capabilities: frozenset[str]) -> str:
    """The endpoint's scopes, as SMART v1 ones for a server that only knows v1."""
    if "permission-v2" not in capabilities and "permission-v1" in capabilities:
        return downgrade_to_v1(endpoint_scopes)
    return endpoint_scopes


async def _adopt_configuration(
    session: AsyncSession, endpoint_id: str, configuration: smart.SmartConfiguration
) -> CatalogEndpoint:
    """The catalog's endpoint, its OAuth endpoints now the ones its server advertises."""
    endpoint = await session.get(CatalogEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"endpoint {endpoint_id} left the catalog; search again")
    endpoint.authorization_endpoint = configuration.authorization_endpoint
    endpoint.token_endpoint = configuration.token_endpoint
    endpoint.revoke_endpoint = configuration.revocation_endpoint
    return endpoint


async def _record_flow(
    ports: ConsentPorts,
    scope: OrgScope,
    request: ConnectRequest,
    target: FlowTarget,
    configuration: smart.SmartConfiguration,
    result_handle_hash: str | None,
) -> str:
    """Write the flow (with a fresh state and PKCE verifier) and its audit row; the authorize
    URL that starts it."""
    state, verifier = new_state(), new_verifier()
    now = ports.clock.now()
    async with ports.database.transaction() as session:
        endpoint = await _adopt_configuration(session, target.endpoint_id, configuration)
        if result_handle_hash is not None:
            await ensure_handle_unused(session, result_handle_hash)
        flow_scope = requested_scope(endpoint.scopes, configuration.capabilities)
        sealed = ports.cipher.seal(verifier, context=f"flow:{_hash_state(state)}")
        session.add(
            ConsentFlow(
                state_hash=_hash_state(state),
                org_id=scope.org_id,
                api_mode=scope.api_mode,
                brand_id=target.brand_id,
                portal_id=target.portal_id,
                endpoint_id=target.endpoint_id,
                redirect_uri=request.redirect_uri,
                widget_origin=request.widget_origin,
                external_id=request.external_id,
                external_state=request.external_state,
                reconnect_connection_id=request.reconnect_connection_id,
                requested_scope=flow_scope,
                token_endpoint=configuration.token_endpoint,
                verifier_kid=sealed.kid,
                verifier_ct=sealed.ciphertext,
                result_handle_hash=result_handle_hash,
                created_at=now,
                expires_at=now + dt.timedelta(minutes=ports.settings.flow_lifetime_minutes),
            )
        )
        await audit.record(
            session,
            ports.clock,
            actor=f"public:{scope.org_id}",
            action="consent.started",
            org_id=scope.org_id,
            detail={"endpoint_id": target.endpoint_id, "api_mode": scope.api_mode},
        )
        client_id = endpoint.client_id or ""
        aud = target.fhir_base if endpoint.aud_required else None
    return authorize_url(
        configuration.authorization_endpoint,
        client_id=client_id,
        redirect_uri=callback_url(ports.public_base_url),
        scope=flow_scope,
        state=state,
        code_challenge=s256_challenge(verifier),
        aud=aud,
    )


async def claim_flow(database: Database, clock: Clock, state: str | None) -> ConsentFlow:
    """Mark the flow used (committed at once, so a replay fails even if the exchange fails)."""
    if not state:
        raise FlowFailure(
            "invalid_request", "the callback has no state; start the connection again"
        )
    problem: tuple[str, str] | None = None
    async with database.transaction() as session:
        flow = await session.scalar(
            select(ConsentFlow)
            .where(ConsentFlow.state_hash == _hash_state(state))
            .with_for_update()
        )
        if flow is None:
            raise FlowFailure(
                "invalid_state", "this sign-in link is not known; start the connection again"
            )
        now = clock.now()
        if flow.used_at is not None:
            problem = (
                "state_reused",
                "this sign-in was already completed; start a new connection instead",
            )
        else:
            flow.used_at = now  # consumed even when expired: a state works at most once
            if flow.expires_at <= now:
                problem = (
                    "flow_expired",
                    "the sign-in took too long and expired; start the connection again",
                )
    # Raised after the commit, so the flow stays consumed whatever happens next.
    if problem is not None:
        raise FlowFailure(*problem, flow=flow)
    return flow


async def complete_flow(
    ports: ConsentPorts,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    error_description: str | None,
) -> FlowSuccess:
    """Finish the flow `state` names; a failure is also kept for the widget's result handle."""
    try:
        flow = await claim_flow(ports.database, ports.clock, state)
        success = await _finish_flow(ports, flow, code, error, error_description)
    except FlowFailure as failure:
        telemetry.consent_failed(failure.flow, failure.error)
        if failure.flow is not None and result_kept_for_widget(failure):
            async with ports.database.transaction() as session:
                await record_result(
                    session,
                    failure.flow.state_hash,
                    failure_result(failure.error, failure.description),
                    ports.clock.now(),
                )
        raise
    telemetry.consent_completed(
        success.flow, success.event["org_connection_id"], success.event["platform_type"]
    )
    return success


async def _finish_flow(
    ports: ConsentPorts,
    flow: ConsentFlow,
    code: str | None,
    error: str | None,
    error_description: str | None,
) -> FlowSuccess:
    """What the health system answered for a claimed flow: its error, or a code to exchange for
    the tokens of a connection."""
    if error:
        description = (
            "the patient declined to share their records"
            if error == "access_denied"
            else f"the health system reported an error: {error_description or error}"
        )
        raise await _audited_failure(ports, flow, error, description)
    if not code:
        raise FlowFailure("invalid_request", "the callback has no code", flow=flow)

    verifier = ports.cipher.open(
        Sealed(flow.verifier_kid, flow.verifier_ct), context=f"flow:{flow.state_hash}"
    )
    async with ports.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, flow.endpoint_id)
        if endpoint is None:
            raise FlowFailure("invalid_state", "the endpoint left the catalog", flow=flow)
        auth = endpoint_auth(ports.cipher, endpoint, ports.client_signer)
        fhir_base, platform_type = endpoint.url, endpoint.platform_type
        allow_private = endpoint.reachable_privately(flow.api_mode)
    try:
        response = await smart.exchange_code(
            ports.http,
            flow.token_endpoint,
            auth,
            code=code,
            redirect_uri=callback_url(ports.public_base_url),
            code_verifier=verifier,
            allow_private=allow_private,
        )
    except (SourceError, FatalError) as exc:
        raise await _audited_failure(
            ports,
            flow,
            "token_exchange_failed",
            f"the health system did not issue tokens ({exc}); start the connection again",
            status=502,
        ) from None
    granted = response.scope or flow.requested_scope
    problem = grant_problem(response.patient, granted)
    if problem is not None:
        raise await _audited_failure(
            ports,
            flow,
            "scope_patient_missing",
            f"{problem}; the patient must connect again and allow access to their records",
        )
    return await _record_connection(ports, flow, response, granted, fhir_base, platform_type)


async def _record_connection(
    ports: ConsentPorts,
    flow: ConsentFlow,
    response: smart.TokenResponse,
    granted: str,
    fhir_base: str,
    platform_type: str,
) -> FlowSuccess:
    clock = ports.clock
    async with ports.database.transaction() as session:
        connection, event = await _authorize_connection(session, flow, platform_type)
        connection.scope = granted
        connection.fhir_base_url = fhir_base
        connection.source_patient_id = response.patient
        await session.flush()
        await store_tokens(session, ports.cipher, clock, connection.org_connection_id, response)
        await record_consent(
            session,
            clock,
            connection,
            event=event,
            requested_scope=flow.requested_scope,
            external_state=flow.external_state,
        )
        data = {
            **connection_event_data(connection),
            "scope": connection.scope,
            "consent_expires_at": None,
            "external_id": flow.external_id,
            "external_state": flow.external_state,
            "request_id": flow.state_hash[:32],
        }
        await announce(
            session,
            ports.jobs,
            clock,
            connection,
            event=EventType.CONNECTION_SUCCESS,
            data=data,
            actor=f"patient-via:{flow.org_id}",
            action=f"consent.{event}",
            detail={"endpoint_id": flow.endpoint_id, "scope": granted},
        )
        view = connection_view(connection)
        result = connection_result(view)
        # With the connection, so a widget polling its handle never sees one without the other.
        await record_result(session, flow.state_hash, result, clock.now())
        return FlowSuccess(flow=flow, connection=view, event=data, result=result)


async def _authorize_connection(
    session: AsyncSession, flow: ConsentFlow, platform_type: str
) -> tuple[OrgConnection, ConsentEvent]:
    """The flow's connection, authorized: the one it reconnects, updated in place (its id stays
    the same), or a new one."""
    connection: OrgConnection | None = None
    if flow.reconnect_connection_id:
        connection = await session.get(OrgConnection, flow.reconnect_connection_id)
    event = ConsentEvent.RECONNECTED if connection is not None else ConsentEvent.GRANTED
    if connection is None:
        connection = OrgConnection(
            org_connection_id=new_connection_id(),
            org_id=flow.org_id,
            api_mode=flow.api_mode,
            catalog_endpoint_id=flow.endpoint_id,
            platform_type=platform_type,
            status=ConnectionStatus.AUTHORIZED,
        )
        session.add(connection)
    connection.catalog_brand_id = flow.brand_id
    connection.catalog_portal_id = flow.portal_id
    connection.status = ConnectionStatus.AUTHORIZED
    connection.external_id = flow.external_id or connection.external_id
    return connection, event


async def _audited_failure(
    ports: ConsentPorts, flow: ConsentFlow, error: str, description: str, *, status: int = 400
) -> FlowFailure:
    """The failure to raise for `flow`, once it is in the audit log (committed: it outlives the
    failed request)."""
    async with ports.database.transaction() as session:
        await audit.record(
            session,
            ports.clock,
            actor=f"patient-via:{flow.org_id}",
            action="consent.failed",
            org_id=flow.org_id,
            detail={"endpoint_id": flow.endpoint_id, "error": error},
        )
    return FlowFailure(error, description, flow=flow, status=status)
