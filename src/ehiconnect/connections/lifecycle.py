"""Ending a connection at the customer's request."""

from __future__ import annotations

import logging
from typing import Any

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.ports import ConnectionPorts
from ehiconnect.connections.service import connection_view, get_connection
from ehiconnect.connections.tokens import endpoint_auth, lock_connection, mark_revoked, open_tokens
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError
from ehiconnect.scope import OrgScope
from ehiconnect.smart import client as smart
from ehiconnect.vocabulary import ConnectionStatus

log = logging.getLogger(__name__)


async def revoke_connection(
    ports: ConnectionPorts, scope: OrgScope, org_connection_id: str
) -> dict[str, Any]:
    """Revoke at the source where supported (best effort), destroy the tokens, emit the event.

    Idempotent: revoking a revoked connection answers its current state without a new event.
    """
    async with ports.database.transaction() as session:
        connection = await get_connection(session, scope, org_connection_id)
        await lock_connection(session, org_connection_id)
        if connection.status == ConnectionStatus.REVOKED:
            return connection_view(connection)
        row = await session.get(ConnectionTokens, org_connection_id)
        endpoint = await session.get(CatalogEndpoint, connection.catalog_endpoint_id)
        if row is not None and endpoint is not None:
            await _revoke_at_source(ports, connection, endpoint, row)
        await mark_revoked(session, ports.clock, ports.jobs, connection, reason="customer_request")
        return connection_view(connection)


async def _revoke_at_source(
    ports: ConnectionPorts,
    connection: OrgConnection,
    endpoint: CatalogEndpoint,
    row: ConnectionTokens,
) -> None:
    """Ask the health system to revoke both tokens, where it has a revocation endpoint. Best
    effort: the connection is revoked here whatever it answers, so a refusal is only logged."""
    revoke_url = endpoint.revoke_endpoint
    if not revoke_url:
        return
    tokens = open_tokens(ports.cipher, row)
    try:
        auth = endpoint_auth(ports.cipher, endpoint, ports.client_signer)
    except FatalError:
        return  # no client registration to revoke with
    for token, hint in (
        (tokens.refresh_token, "refresh_token"),
        (tokens.access_token, "access_token"),
    ):
        if not token:
            continue
        accepted = await smart.revoke(
            ports.http,
            revoke_url,
            auth,
            token=token,
            token_type_hint=hint,
            allow_private=endpoint.reachable_privately(connection.api_mode),
        )
        if not accepted:
            log.warning(
                "the source did not confirm token revocation",
                extra={"org_connection_id": connection.org_connection_id, "hint": hint},
            )
