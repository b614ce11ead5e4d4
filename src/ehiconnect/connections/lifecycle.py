"""Ending a connection at the customer's request."""

from __future__ import annotations

import logging
from typing import Any

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.service import connection_view, get_connection
from ehiconnect.connections.tokens import endpoint_auth, lock_connection, mark_revoked, open_tokens
from ehiconnect.errors import FatalError
from ehiconnect.orgs.credentials import Principal
from ehiconnect.runtime import Runtime
from ehiconnect.smart import client as smart

log = logging.getLogger(__name__)


async def revoke_connection(
    runtime: Runtime, principal: Principal, org_connection_id: str
) -> dict[str, Any]:
    """Revoke at the source where supported (best effort), destroy the tokens, emit the event.

    Idempotent: revoking a revoked connection answers its current state without a new event.
    """
    async with runtime.database.transaction() as session:
        connection = await get_connection(session, principal, org_connection_id)
        await lock_connection(session, org_connection_id)
        if connection.status == "revoked":
            return connection_view(connection)
        row = await session.get(ConnectionTokens, org_connection_id)
        endpoint = await session.get(CatalogEndpoint, connection.catalog_endpoint_id)
        if row is not None and endpoint is not None and endpoint.revoke_endpoint:
            tokens = open_tokens(runtime.cipher, row)
            try:
                auth = endpoint_auth(runtime.cipher, endpoint, runtime.client_signer)
            except FatalError:
                auth = None
            if auth is not None:
                for token, hint in (
                    (tokens.refresh_token, "refresh_token"),
                    (tokens.access_token, "access_token"),
                ):
                    if token:
                        accepted = await smart.revoke(
                            runtime.http,
                            endpoint.revoke_endpoint,
                            auth,
                            token=token,
                            token_type_hint=hint,
                            allow_private=endpoint.reachable_privately(connection.api_mode),
                        )
                        if not accepted:
                            log.warning(
                                "the source did not confirm token revocation",
                                extra={"org_connection_id": org_connection_id, "hint": hint},
                            )
        await mark_revoked(
            session, runtime.clock, runtime.jobs, connection, reason="customer_request"
        )
        return connection_view(connection)
