"""What happens to a connection, told twice in the caller's transaction: to the organization as a
webhook event, and to operators as an audit row naming who caused it.

Both are written with the change they report, so neither can exist without the other or without
the change (a rolled-back revoke sends no `patient.authorization_revoked`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit
from ehiconnect.clock import Clock
from ehiconnect.db.models import OrgConnection
from ehiconnect.ids import as_api_mode
from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks.outbox import emit
from ehiconnect.webhooks.payloads import payload_of


def connection_event_data(connection: OrgConnection) -> dict[str, Any]:
    """The fields every event about a connection carries (compat)."""
    return {
        "org_connection_id": connection.org_connection_id,
        "endpoint_id": connection.catalog_endpoint_id,
        "portal_id": connection.catalog_portal_id,
        "brand_id": connection.catalog_brand_id,
        "platform_type": connection.platform_type,
        "connection_status": connection.status,
    }


async def announce(
    session: AsyncSession,
    jobs: procrastinate.App | None,
    clock: Clock,
    connection: OrgConnection,
    *,
    event: EventType,
    data: Mapping[str, Any],
    actor: str,
    action: str,
    detail: dict[str, Any],
) -> None:
    """Emit `event` with `data` to the connection's organization and audit `action` by `actor`."""
    await emit(
        session,
        clock=clock,
        org_id=connection.org_id,
        api_mode=as_api_mode(connection.api_mode),
        event=payload_of(event, data),
    )
    await audit.record(
        session,
        clock,
        actor=actor,
        action=action,
        org_id=connection.org_id,
        org_connection_id=connection.org_connection_id,
        detail=detail,
    )
