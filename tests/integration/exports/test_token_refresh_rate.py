"""Short-lived access tokens are refreshed about once per lifetime, not before every request.

With a fixed 300 s margin, a health system handing out 60 s tokens saw a refresh grant before
almost every FHIR request (131 for 132 in a crawl of carl at summit), each one rotating the
refresh token. The margin now scales down with the token's lifetime.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from ehiconnect.clock import FrozenClock
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.refresh_policy import RefreshMargin
from ehiconnect.connections.tokens import fresh_access_token
from ehiconnect.db.models import AuditLog
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.app import build_sandbox_app
from ehiconnect.sandbox.config import SandboxConfig, TokenLifetimes
from ehiconnect.sandbox.systems import DEFAULT_SYSTEMS
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import drain, start, status

HARBOR_LIFETIME = 300


@pytest.fixture
def sandbox_app() -> Starlette:
    """The shipped systems, with Harbor handing out 300 s access tokens (summit: 60 s)."""
    systems = tuple(
        system.model_copy(update={"lifetimes": TokenLifetimes(access_token_s=HARBOR_LIFETIME)})
        if system.slug == "harbor"
        else system
        for system in DEFAULT_SYSTEMS
    )
    return build_sandbox_app(SandboxConfig(systems=systems))


async def _refreshes(runtime: Runtime, connection_id: str) -> int:
    async with runtime.database.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(
                AuditLog.org_connection_id == connection_id,
                AuditLog.action == "connection.token_refreshed",
            )
        )
    return int(count or 0)


async def test_a_crawl_at_summit_refreshes_at_most_once_per_token_lifetime(
    platform: Platform, runtime: Runtime, settings: Settings
) -> None:
    assert settings.consent.token_refresh_margin_seconds >= 60  # the setting outlives the token
    connection_id = platform.connect("summit", "carl")["org_connection_id"]
    began = time.monotonic()
    task_id = start(platform, connection_id)
    await drain(runtime)
    elapsed = time.monotonic() - began
    done = status(platform, task_id)
    assert done["status"] == "success", done
    assert done["progress"]["resources"] > 100  # a crawl of many requests, each needing a token
    # A 60 s token is refreshed 15 s before it expires: at most once per 45 s of crawling.
    assert await _refreshes(runtime, connection_id) <= 1 + int(elapsed // 45)


@pytest.mark.parametrize(("slug", "lifetime"), [("summit", 60), ("harbor", HARBOR_LIFETIME)])
async def test_tokens_are_used_for_most_of_their_lifetime(
    platform: Platform, settings: Settings, slug: str, lifetime: int
) -> None:
    """A caller asking for a token every second for three lifetimes gets about three refreshes."""
    connection_id = platform.connect(slug, "carl" if slug == "summit" else "amy")[
        "org_connection_id"
    ]
    clock = FrozenClock()
    async with Runtime.open(settings, clock=clock) as runtime:
        async with runtime.database.transaction() as session:
            row = await session.get(ConnectionTokens, connection_id)
            assert row is not None
            assert row.access_expires_at is not None
            assert row.access_lifetime_seconds == lifetime
            issued = row.access_expires_at.timestamp() - lifetime
        clock.advance(issued - clock.now().timestamp())
        margin = RefreshMargin(
            settings.consent.token_refresh_margin_seconds,
            settings.consent.token_refresh_margin_fraction,
        )
        step = lifetime / 60
        for _ in range(3 * 60):
            await fresh_access_token(
                runtime.database,
                runtime.cipher,
                runtime.clock,
                runtime.http,
                runtime.jobs,
                connection_id,
                margin=margin,
            )
            async with runtime.database.transaction() as session:
                row = await session.get(ConnectionTokens, connection_id)
                assert row is not None
                assert row.access_expires_at is not None
                # Never handed out a token that was about to expire.
                assert row.access_expires_at > clock.now()
            clock.advance(step)
        refreshes = await _refreshes(runtime, connection_id)
    # Three lifetimes, each token used for three quarters of its life: three or four refreshes.
    assert 2 <= refreshes <= 4
