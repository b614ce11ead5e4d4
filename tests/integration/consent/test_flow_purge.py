"""Expired consent flows are deleted after their retention, live ones are kept."""

from __future__ import annotations

import psycopg

from ehiconnect.clock import FrozenClock
from ehiconnect.consent.tasks import purge_old_flows
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import Platform


def flow_count(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM consent_flows").fetchone()
    return int(row[0]) if row else 0


async def test_flows_are_forgotten_a_retention_after_they_expire(
    platform: Platform, settings: Settings, platform_clock: FrozenClock, database_url: str
) -> None:
    platform.authorize("harbor", external_id="user-1")  # started, never finished
    platform.authorize("harbor", external_id="user-2")
    assert flow_count(database_url) == 2
    lifetime = settings.consent.flow_lifetime_minutes * 60
    retention = settings.consent.flow_retention_hours * 3600

    async with Runtime.open(settings, clock=platform_clock) as runtime:
        platform_clock.advance(lifetime + retention - 60)  # expired, but within the retention
        assert await purge_old_flows(runtime.consent) == 0
        platform.authorize("harbor", external_id="user-3")  # a flow started just now
        platform_clock.advance(120)
        assert await purge_old_flows(runtime.consent) == 2
    assert flow_count(database_url) == 1  # the live flow stays
