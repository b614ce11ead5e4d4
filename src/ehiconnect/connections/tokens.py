"""A connection's tokens: sealed storage, and refresh under a per-connection lock.

Every process that needs an access token calls `fresh_access_token`. Reading a token that is still
good takes one short read and no lock. A refresh takes a transaction-level advisory lock named
after the connection, so concurrent refreshes (two workers, the periodic refresher) run one at a
time and the second finds the token the first obtained. Tokens a refresh returns are committed
at once in a short transaction of their own (a rotated refresh token must outlive a kill or a
lost connection of the locked one). When a token is due is `refresh_policy`'s call: the margin
scales down with short-lived tokens.

While a refresh may be in flight the connection's status reads `refreshing` (DESIGN §1): a short
transaction of its own sets it before the locked one (readers cannot see an uncommitted change),
the refresh's own transaction sets `authorized` again with the new tokens, and a last short
transaction settles it whatever happened. A process killed mid-refresh leaves `refreshing` behind;
the next `fresh_access_token` of that connection (the periodic refresher calls it for every
connection) sets it back, unless a refresh really is running, i.e. holds the connection's lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx
import procrastinate
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit
from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.clock import Clock
from ehiconnect.connections import telemetry
from ehiconnect.connections.consent_records import record_consent
from ehiconnect.connections.events import announce, connection_event_data
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.refresh_policy import RefreshMargin, refresh_due
from ehiconnect.db.database import Database
from ehiconnect.db.locks import advisory_xact_lock
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError, ReconsentRequired
from ehiconnect.smart import client as smart
from ehiconnect.smart.client_keys import ClientSigner
from ehiconnect.vault import Sealed, TokenCipher
from ehiconnect.vocabulary import ConnectionStatus, ConsentEvent, EventType


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    access_expires_at: dt.datetime | None


def _context(connection_id: str, field: str) -> str:
    return f"connection:{connection_id}:{field}"


async def store_tokens(
    session: AsyncSession,
    cipher: TokenCipher,
    clock: Clock,
    connection_id: str,
    response: smart.TokenResponse,
    *,
    keep_refresh_token: str | None = None,
) -> None:
    """Seal and save the tokens of a token response (keeping the old refresh token if none came)."""
    refresh_token = response.refresh_token or keep_refresh_token
    access = cipher.seal(response.access_token, context=_context(connection_id, "access_token"))
    refresh = (
        cipher.seal(refresh_token, context=_context(connection_id, "refresh_token"))
        if refresh_token
        else None
    )
    expires_at = (
        clock.now() + dt.timedelta(seconds=response.expires_in) if response.expires_in else None
    )
    row = await session.get(ConnectionTokens, connection_id)
    if row is None:
        row = ConnectionTokens(org_connection_id=connection_id)
        session.add(row)
    row.kid = access.kid
    row.access_token_ct = access.ciphertext
    row.refresh_token_ct = refresh.ciphertext if refresh else None
    row.token_type = response.token_type
    row.access_expires_at = expires_at
    row.access_lifetime_seconds = response.expires_in or None
    row.refresh_failures = 0
    await session.flush()


def open_tokens(cipher: TokenCipher, row: ConnectionTokens) -> Tokens:
    connection_id = row.org_connection_id
    access = cipher.open(
        Sealed(row.kid, row.access_token_ct), context=_context(connection_id, "access_token")
    )
    refresh = (
        cipher.open(
            Sealed(row.kid, row.refresh_token_ct), context=_context(connection_id, "refresh_token")
        )
        if row.refresh_token_ct
        else None
    )
    return Tokens(
        access_token=access, refresh_token=refresh, access_expires_at=row.access_expires_at
    )


def endpoint_auth(
    cipher: TokenCipher, endpoint: CatalogEndpoint, signer: ClientSigner | None = None
) -> smart.ClientAuth:
    if not endpoint.client_id:
        raise FatalError(
            f"endpoint {endpoint.id} has no client_id configured; set it with "
            "`ehiconnect catalog configure`",
            failure_reason="endpoint_misconfigured",
        )
    secret = None
    if endpoint.client_secret_ct and endpoint.client_secret_kid:
        secret = cipher.open(
            Sealed(endpoint.client_secret_kid, endpoint.client_secret_ct),
            context=f"endpoint:{endpoint.id}:client_secret",
        )
    client_id = endpoint.client_id
    assertion = (
        (lambda audience: signer.assertion(client_id, audience)) if signer is not None else None
    )
    return smart.ClientAuth(
        client_id=client_id,
        method=endpoint.client_auth_method,
        secret=secret,
        assertion=assertion,
    )


def _lock_name(connection_id: str) -> str:
    return f"connection:{connection_id}"


async def lock_connection(session: AsyncSession, connection_id: str) -> None:
    await advisory_xact_lock(session, _lock_name(connection_id))


async def mark_refreshing(database: Database, connection_id: str) -> None:
    """Readers see `refreshing` from now on: committed at once, before the refresh starts."""
    async with database.transaction() as session:
        await session.execute(
            update(OrgConnection)
            .where(
                OrgConnection.org_connection_id == connection_id,
                OrgConnection.status == ConnectionStatus.AUTHORIZED,
            )
            .values(status=ConnectionStatus.REFRESHING)
        )


async def settle_refreshing(database: Database, connection_id: str) -> None:
    """`refreshing` back to `authorized`, unless a refresh holds the connection's lock now (it
    settles its own). Repairs the status a crashed refresh left behind."""
    async with database.transaction() as session:
        # The same lock key as `advisory_xact_lock`; trying it never waits.
        await session.execute(
            text(
                "UPDATE org_connections SET status = :authorized "
                "WHERE org_connection_id = :id AND status = :refreshing "
                "AND pg_try_advisory_xact_lock(hashtextextended(:key, 0))"
            ),
            {
                "id": connection_id,
                "key": _lock_name(connection_id),
                "authorized": ConnectionStatus.AUTHORIZED.value,
                "refreshing": ConnectionStatus.REFRESHING.value,
            },
        )


async def fresh_access_token(
    database: Database,
    cipher: TokenCipher,
    clock: Clock,
    http: httpx.AsyncClient,
    jobs: procrastinate.App | None,
    connection_id: str,
    *,
    margin: RefreshMargin | dt.timedelta,
    force: bool = False,
    rejected: str | None = None,
    signer: ClientSigner | None = None,
) -> str:
    """A usable access token, refreshed first when `margin` says it is due (or `force`).

    `margin` is a `RefreshMargin` (scaled to the token's lifetime) or a plain lead time.
    `rejected` is a token the health system just refused (401): it is refreshed unless another
    caller already replaced it, in which case the replacement comes back without a new refresh.

    Raises ReconsentRequired (after marking the connection revoked and emitting
    `patient.authorization_revoked`) when the health system refuses the refresh token.
    """
    policy = margin if isinstance(margin, RefreshMargin) else RefreshMargin(margin.total_seconds())
    if not force and rejected is None:
        # The common case: the stored token is still good. One short read, no lock.
        good: str | None = None
        async with database.transaction() as session:
            connection = await session.get(OrgConnection, connection_id)
            row = await session.get(ConnectionTokens, connection_id)
            left_refreshing = (
                connection is not None and connection.status == ConnectionStatus.REFRESHING
            )
            if (
                connection is not None
                and row is not None
                and connection.status != ConnectionStatus.REVOKED
                and not refresh_due(
                    row.access_expires_at, row.access_lifetime_seconds, policy, clock.now()
                )
            ):
                good = open_tokens(cipher, row).access_token
        if good is not None:
            if left_refreshing:
                await settle_refreshing(database, connection_id)
            return good
    await mark_refreshing(database, connection_id)
    try:
        return await _refresh_locked(
            database,
            cipher,
            clock,
            http,
            jobs,
            connection_id,
            policy=policy,
            force=force,
            rejected=rejected,
            signer=signer,
        )
    finally:
        await settle_refreshing(database, connection_id)


async def _refresh_locked(
    database: Database,
    cipher: TokenCipher,
    clock: Clock,
    http: httpx.AsyncClient,
    jobs: procrastinate.App | None,
    connection_id: str,
    *,
    policy: RefreshMargin,
    force: bool,
    rejected: str | None,
    signer: ClientSigner | None,
) -> str:
    """The refresh itself, under the connection's lock (see `fresh_access_token`)."""
    refused: ReconsentRequired | None = None
    async with database.transaction() as session:
        await lock_connection(session, connection_id)
        connection = await session.get(OrgConnection, connection_id)
        row = await session.get(ConnectionTokens, connection_id)
        if connection is None or row is None or connection.status == ConnectionStatus.REVOKED:
            raise ReconsentRequired("the connection is revoked; the patient must connect again")
        tokens = open_tokens(cipher, row)
        if rejected is not None:
            if rejected != tokens.access_token:
                return tokens.access_token
            force = True
        if not force and not refresh_due(
            row.access_expires_at, row.access_lifetime_seconds, policy, clock.now()
        ):
            return tokens.access_token
        if tokens.refresh_token is None:
            raise ReconsentRequired(
                "the access token expired and the health system gave no refresh token "
                "(offline_access was not granted); the patient must connect again"
            )
        endpoint = await session.get(CatalogEndpoint, connection.catalog_endpoint_id)
        if endpoint is None or not endpoint.token_endpoint:
            raise FatalError(
                "the connection's endpoint has no token endpoint",
                failure_reason="token_refresh_failure",
            )
        try:
            response = await smart.refresh(
                http,
                endpoint.token_endpoint,
                endpoint_auth(cipher, endpoint, signer),
                refresh_token=tokens.refresh_token,
                allow_private=endpoint.reachable_privately(connection.api_mode),
            )
        except ReconsentRequired as exc:
            # Committed with this transaction; raised after it.
            telemetry.token_refresh_failed(connection, refused=True, error=type(exc).__name__)
            await mark_revoked(session, clock, jobs, connection, reason="refresh_refused")
            refused = exc
        except Exception as exc:
            telemetry.token_refresh_failed(connection, refused=False, error=type(exc).__name__)
            raise
        else:
            # The source may have rotated the refresh token: the old one is dead there now.
            # Commit the new ones at once in a transaction of their own, so that a kill or a
            # lost connection before this (locked) transaction commits cannot lose them.
            async with database.transaction() as own:
                await store_tokens(
                    own,
                    cipher,
                    clock,
                    connection_id,
                    response,
                    keep_refresh_token=tokens.refresh_token,
                )
            if response.scope and response.scope != connection.scope:
                connection.scope = response.scope
            if connection.status == ConnectionStatus.REFRESHING:
                connection.status = ConnectionStatus.AUTHORIZED  # committed with the new tokens
            await audit.record(
                session,
                clock,
                actor="system",
                action="connection.token_refreshed",
                org_id=connection.org_id,
                org_connection_id=connection_id,
                detail={"rotated_refresh_token": response.refresh_token is not None},
            )
            telemetry.token_refreshed(connection, rotated=response.refresh_token is not None)
            return response.access_token
    raise refused


async def mark_revoked(
    session: AsyncSession,
    clock: Clock,
    jobs: procrastinate.App | None,
    connection: OrgConnection,
    *,
    reason: str,
) -> None:
    """Destroy the tokens, mark the connection revoked, record it and emit the event."""
    row = await session.get(ConnectionTokens, connection.org_connection_id)
    if row is not None:
        await session.delete(row)
    connection.status = ConnectionStatus.REVOKED
    telemetry.connection_revoked(connection, reason)
    await record_consent(
        session, clock, connection, event=ConsentEvent.REVOKED, detail={"reason": reason}
    )
    await announce(
        session,
        jobs,
        clock,
        connection,
        event=EventType.AUTHORIZATION_REVOKED,
        data=connection_event_data(connection),
        actor="system" if reason != "customer_request" else f"org:{connection.org_id}",
        action="connection.revoked",
        detail={"reason": reason},
    )
