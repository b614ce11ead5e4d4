"""Reading and creating connections, always within an `OrgScope` (one organization, one mode)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.models import OrgConnection
from ehiconnect.ids import ApiMode, new_connection_id
from ehiconnect.scope import OrgScope
from ehiconnect.vocabulary import ConnectionStatus

WHERE_IDS_COME_FROM = "use the org_connection_id from the patient.connection_success event"


async def get_connection(
    session: AsyncSession, scope: OrgScope, org_connection_id: str
) -> OrgConnection:
    """A connection in `scope`, or the scope's error: another organization's connection looks
    like none at all (404), one of the other mode names the key to use (403)."""
    connection = (
        await session.get(OrgConnection, org_connection_id)
        if _is_uuid(org_connection_id)
        else None  # never a connection id: no need to ask the database
    )
    return scope.admitted(
        connection, kind="connection", object_id=org_connection_id, hint=WHERE_IDS_COME_FROM
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def add_connection(
    session: AsyncSession,
    *,
    org_id: str,
    api_mode: ApiMode,
    endpoint_id: str,
    platform_type: str,
    brand_id: str | None = None,
    portal_id: str | None = None,
    scope: str | None = None,
    external_id: str | None = None,
    consent_expires_at: dt.datetime | None = None,
) -> OrgConnection:
    connection = OrgConnection(
        org_connection_id=new_connection_id(),
        org_id=org_id,
        api_mode=api_mode,
        catalog_brand_id=brand_id,
        catalog_portal_id=portal_id,
        catalog_endpoint_id=endpoint_id,
        platform_type=platform_type,
        status=ConnectionStatus.AUTHORIZED,
        scope=scope,
        external_id=external_id,
        consent_expires_at=consent_expires_at,
    )
    session.add(connection)
    await session.flush()
    return connection


def connection_view(connection: OrgConnection) -> dict[str, Any]:
    """The compat JSON shape of `GET /bridge/org_connection/{id}`."""
    return {
        "org_connection_id": connection.org_connection_id,
        "org_id": connection.org_id,
        "catalog_brand_id": connection.catalog_brand_id,
        "catalog_portal_id": connection.catalog_portal_id,
        "catalog_endpoint_id": connection.catalog_endpoint_id,
        "platform_type": connection.platform_type,
        "api_mode": connection.api_mode,
        "status": connection.status,
        "scope": connection.scope,
        "consent_expires_at": (
            connection.consent_expires_at.isoformat() if connection.consent_expires_at else None
        ),
    }
