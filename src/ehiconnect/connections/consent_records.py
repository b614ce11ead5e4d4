"""The append-only consent log: one `ConsentEvent` per grant, reconnect or revocation."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.clock import Clock
from ehiconnect.connections.models import ConsentRecord
from ehiconnect.db.models import OrgConnection
from ehiconnect.vocabulary import ConsentEvent


async def record_consent(
    session: AsyncSession,
    clock: Clock,
    connection: OrgConnection,
    *,
    event: ConsentEvent,
    requested_scope: str | None = None,
    external_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        ConsentRecord(
            recorded_at=clock.now(),
            event=event,
            org_id=connection.org_id,
            org_connection_id=connection.org_connection_id,
            api_mode=connection.api_mode,
            brand_id=connection.catalog_brand_id,
            portal_id=connection.catalog_portal_id,
            endpoint_id=connection.catalog_endpoint_id,
            external_id=connection.external_id,
            external_state=external_state,
            requested_scope=requested_scope,
            granted_scope=connection.scope,
            detail=detail or {},
        )
    )
