"""Reading and creating connections, always scoped to the calling organization and mode."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import Forbidden, NotFound
from ehiconnect.ids import ApiMode, new_connection_id
from ehiconnect.orgs.credentials import Principal

CONNECTION_STATUSES = ("authorized", "revoked", "refreshing")


async def get_connection(
    session: AsyncSession, principal: Principal, org_connection_id: str
) -> OrgConnection:
    """The caller's connection, or NotFound: another organization's looks like none at all."""
    not_found = NotFound(
        f"you have no connection with id {org_connection_id}; "
        "use the org_connection_id from the patient.connection_success event"
    )
    try:
        uuid.UUID(org_connection_id)
    except ValueError:
        raise not_found from None
    connection = await session.get(OrgConnection, org_connection_id)
    if connection is None or connection.org_id != principal.org_id:
        raise not_found
    if connection.api_mode != principal.api_mode:
        raise Forbidden(
            f"this connection was made in {connection.api_mode} mode and your key is a "
            f"{principal.api_mode} key; use your {connection.api_mode} key",
            code="api_mode_mismatch",
        )
    return connection


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
        status="authorized",
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
