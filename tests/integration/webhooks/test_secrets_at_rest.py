"""Endpoint secrets are sealed by the vault, bound to their endpoint."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.webhooks.endpoints import active_secrets
from ehiconnect.webhooks.models import WebhookEndpointSecret
from tests.integration.webhooks.helpers import add_endpoint

pytestmark = pytest.mark.integration


async def test_secrets_are_stored_encrypted_and_do_not_open_elsewhere(
    runtime: Runtime, org: CreatedOrg
) -> None:
    first = await add_endpoint(runtime, org.org_id, "https://hooks.example.com/1")
    second = await add_endpoint(runtime, org.org_id, "https://hooks.example.com/2")
    now = runtime.clock.now()
    async with runtime.database.transaction() as session:
        rows = {
            r.endpoint_id: r for r in (await session.scalars(select(WebhookEndpointSecret))).all()
        }
        stored = rows[first.endpoint_id].secret_ciphertext
        assert first.secret.encode() not in stored
        assert first.secret.removeprefix("whsec_").encode() not in stored
        assert await active_secrets(session, runtime.cipher, [first.endpoint_id], now) == {
            first.endpoint_id: [first.secret]
        }
        # A ciphertext copied into another endpoint's row does not open there.
        await session.execute(
            update(WebhookEndpointSecret)
            .where(WebhookEndpointSecret.endpoint_id == second.endpoint_id)
            .values(secret_ciphertext=stored)
        )
        opened = await active_secrets(
            session, runtime.cipher, [first.endpoint_id, second.endpoint_id], now
        )
    assert opened == {first.endpoint_id: [first.secret]}
