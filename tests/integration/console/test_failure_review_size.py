"""The failure review with more groups than a page holds: the largest are shown, the rest
counted with a link to every case (the page stays fast however many health systems fail)."""

from __future__ import annotations

import re

import psycopg

from ehiconnect.console.queries.failures import MAX_GROUPS
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from tests.integration.console.support import ConsoleClient, add_account

EXTRA = 7


def fail_exports_at_many_health_systems(database_url: str, org_id: str, systems: int) -> None:
    """One failed export per health system; the first system fails three times (the largest)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """
            INSERT INTO org_connections (org_connection_id, org_id, api_mode, catalog_brand_id,
                catalog_endpoint_id, platform_type, status, created_at, updated_at)
            SELECT 'conn-' || n, %(org)s, 'test', 'brand-' || n, 'endpoint-' || n, 'sandbox',
                'authorized', now(), now()
            FROM generate_series(1, %(systems)s) AS n
            """,
            {"org": org_id, "systems": systems},
        )
        conn.execute(
            """
            INSERT INTO export_tasks (task_id, org_id, org_connection_id, api_mode, status,
                phase, progress, failure_reason, created_at, deadline_at, runs, failures,
                stats, error_count)
            SELECT md5('task' || n || '-' || k), %(org)s, 'conn-' || n, 'test', 'failed',
                'failed', '{"failed_in_phase": "crawling"}', 'timeout', now(),
                now() + interval '1 day', 1, 0, '{}', 0
            FROM generate_series(1, %(systems)s) AS n,
                 generate_series(1, CASE WHEN n = 1 THEN 3 ELSE 1 END) AS k
            """,
            {"org": org_id, "systems": systems},
        )


async def test_the_largest_groups_are_shown_and_the_rest_counted(
    runtime: Runtime, org: CreatedOrg, console: ConsoleClient, database_url: str
) -> None:
    fail_exports_at_many_health_systems(database_url, org.org_id, MAX_GROUPS + EXTRA)
    await add_account(runtime, "ops@example.org")
    console.login("ops@example.org")

    page = console.get("/console/failures?days=7")

    assert page.status_code == 200
    exports = page.text.split('id="export-h"')[1].split("</section>")[0]
    assert len(re.findall(r"<tr>\s*<td>timeout</td>", exports)) == MAX_GROUPS
    assert "brand-1<" in exports  # the largest group is among those shown
    assert f"and {EXTRA} smaller groups" in exports
    assert "/console/exports?status=failed&amp;days=7" in exports
