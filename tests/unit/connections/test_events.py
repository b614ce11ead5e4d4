"""What every event about a connection says of it (compat field names)."""

from __future__ import annotations

import json

from ehiconnect.connections.events import connection_event_data
from ehiconnect.db.models import OrgConnection
from ehiconnect.vocabulary import ConnectionStatus


def test_a_connection_event_names_the_connection_and_its_status() -> None:
    connection = OrgConnection(
        org_connection_id="0b6f1d7e-3c41-4b8e-9a55-1c2d3e4f5a6b",
        org_id="org-1",
        api_mode="test",
        catalog_brand_id="brand-1",
        catalog_portal_id="portal-1",
        catalog_endpoint_id="endpoint-1",
        platform_type="epic",
        status=ConnectionStatus.REVOKED,
    )
    data = connection_event_data(connection)
    assert json.loads(json.dumps(data)) == {
        "org_connection_id": "0b6f1d7e-3c41-4b8e-9a55-1c2d3e4f5a6b",
        "endpoint_id": "endpoint-1",
        "portal_id": "portal-1",
        "brand_id": "brand-1",
        "platform_type": "epic",
        "connection_status": "revoked",
    }
