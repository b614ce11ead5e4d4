"""FastAPI dependencies: the runtime, a transaction per request, the caller, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Response, Security
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Scope

from ehiconnect.api.envelope import api_error_response
from ehiconnect.api.openapi import BASIC_AUTH, BEARER_AUTH
from ehiconnect.api.ratelimit import client_key
from ehiconnect.api.ratelimit_store import SharedRateLimiter
from ehiconnect.connections.ports import ConnectionPorts
from ehiconnect.consent.ports import ConsentPorts
from ehiconnect.db.unavailable import database_unavailable, is_database_away
from ehiconnect.errors import ApiError
from ehiconnect.orgs.credentials import Principal, parse_authorization
from ehiconnect.orgs.service import authenticate
from ehiconnect.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_consent_ports(runtime: RuntimeDep) -> ConsentPorts:
    return runtime.consent


ConsentDep = Annotated[ConsentPorts, Depends(get_consent_ports)]


def get_connection_ports(runtime: RuntimeDep) -> ConnectionPorts:
    return runtime.connections


ConnectionsDep = Annotated[ConnectionPorts, Depends(get_connection_ports)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.database.transaction() as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a client never
# reads back less than it was told was written.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_principal(
    request: Request,
    runtime: RuntimeDep,
    _basic: Annotated[HTTPAuthorizationCredentials | None, Security(BASIC_AUTH)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_AUTH)],
) -> Principal:
    """The organization and mode of a server-side caller, from its private key.

    The two security dependencies only declare Basic and Bearer in the OpenAPI document (they
    never refuse); the header is read and checked by `parse_authorization`.
    """
    return await _principal_of(request, runtime)


async def _principal_of(request: Request, runtime: Runtime) -> Principal:
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    credentials = parse_authorization(request.headers.get("authorization"))
    async with runtime.database.transaction() as session:
        principal = await authenticate(session, runtime.clock, credentials)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def public_rate_limit(request: Request, runtime: RuntimeDep) -> None:
    limiter: SharedRateLimiter = request.app.state.public_limiter
    # request.client is the connecting address, or the one a trusted proxy forwarded
    # (api.trusted_proxies); never a header any client can set.
    client = client_key(request.client.host) if request.client else "unknown"
    await limiter.check(runtime.database, client)


PublicRateLimit = Depends(public_rate_limit)


async def authenticate_before_body(scope: Scope) -> Response | None:
    """For a route that needs a private key: check the caller's key before the body is read.

    FastAPI reads and parses a body before it resolves dependencies, so without this a caller
    with no valid key could still make the server read and parse a body (up to
    `api.max_body_bytes`). `BodyLimit` calls this when the route first reads the body; the
    principal found is kept on the request for `get_principal`.
    """
    dependant = getattr(scope.get("route"), "dependant", None)
    if not isinstance(dependant, Dependant) or not _needs(dependant, get_principal):
        return None
    request = Request(scope)
    try:
        await _principal_of(request, get_runtime(request))
    except ApiError as exc:
        return api_error_response(request, exc)
    except Exception as exc:
        # Outside any route, so the app's handlers would not see it: answer here.
        if is_database_away(exc):
            return api_error_response(request, database_unavailable())
        raise
    return None


def _needs(dependant: Dependant, call: object) -> bool:
    return any(d.call is call or _needs(d, call) for d in dependant.dependencies)
