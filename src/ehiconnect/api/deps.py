"""FastAPI dependencies: the runtime, a transaction per request, the caller, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.api.ratelimit import TokenBucketLimiter
from ehiconnect.orgs.credentials import Principal, parse_authorization
from ehiconnect.orgs.service import authenticate
from ehiconnect.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.database.transaction() as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a client never
# reads back less than it was told was written.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """The organization and mode of a server-side caller, from its private key."""
    credentials = parse_authorization(request.headers.get("authorization"))
    async with runtime.database.transaction() as session:
        return await authenticate(session, runtime.clock, credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def public_rate_limit(request: Request) -> None:
    limiter: TokenBucketLimiter = request.app.state.public_limiter
    limiter.check(request.client.host if request.client else "unknown")


PublicRateLimit = Depends(public_rate_limit)
