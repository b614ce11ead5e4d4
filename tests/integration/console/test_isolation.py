"""A customer's console account reaches only its organization, in the mode it chose."""

from __future__ import annotations

import psycopg

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from tests.integration.conftest import make_org
from tests.integration.consent.conftest import Platform
from tests.integration.console.support import ConsoleClient, add_account
from tests.integration.exports.support import start
from tests.integration.webhooks.helpers import add_endpoint, emit


def one(database_url: str, statement: str) -> object:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(statement).fetchone()
    assert row is not None
    return row[0]


async def test_a_customer_cannot_reach_another_organizations_objects_by_url(
    runtime: Runtime,
    platform: Platform,
    org: CreatedOrg,
    console: ConsoleClient,
    other_console: ConsoleClient,
    database_url: str,
) -> None:
    # Acme (the fixture's org) has a connection, an export and a webhook delivery.
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    task_id = start(platform, connection_id)
    await add_endpoint(runtime, org.org_id, "http://127.0.0.1:9/hook")
    await emit(runtime, org.org_id)
    delivery_id = one(database_url, "SELECT id FROM webhook_deliveries")
    other = await make_org(runtime, "Globex")
    await add_account(runtime, "me@globex.example", org_id=other.org_id)
    await add_account(runtime, "me@acme.example", org_id=org.org_id)
    console.login("me@globex.example")
    other_console.login("me@acme.example")

    # Acme's own account sees all three...
    for path in (
        f"/console/connections/{connection_id}",
        f"/console/exports/{task_id}",
        f"/console/webhooks/deliveries/{delivery_id}",
    ):
        assert other_console.get(path).status_code == 200, path
    # ...Globex's sees none, by list or by URL, and answers as for an unknown id.
    for path in (
        f"/console/connections/{connection_id}",
        f"/console/exports/{task_id}",
        f"/console/exports/{task_id}/progress",
        f"/console/webhooks/deliveries/{delivery_id}",
        "/console/connections/00000000-0000-4000-8000-000000000000",
    ):
        page = console.get(path)
        assert page.status_code == 404, path
        assert "Harbor" not in page.text  # nothing of the object, only the id asked for
    for path in ("/console/connections", "/console/exports", "/console/webhooks", "/console/"):
        page = console.get(path)
        assert page.status_code == 200, path
        for secret_id in (connection_id, task_id, f"#{delivery_id}<"):
            assert secret_id not in page.text, (path, secret_id)
    # Nor can it act on them with its own valid CSRF token.
    token = console.csrf()
    revoke = console.post(f"/console/connections/{connection_id}/revoke", {"csrf_token": token})
    resend = console.post(
        f"/console/webhooks/deliveries/{delivery_id}/resend", {"csrf_token": token}
    )
    assert revoke.status_code == 404
    assert resend.status_code == 404
    assert one(database_url, "SELECT status FROM org_connections") == "authorized"
    assert one(database_url, "SELECT attempts FROM webhook_deliveries") == 0


async def test_a_customer_sees_the_mode_it_chose(
    runtime: Runtime, platform: Platform, org: CreatedOrg, console: ConsoleClient
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    await add_account(runtime, "me@acme.example", org_id=org.org_id)
    console.login("me@acme.example")
    assert connection_id in console.get("/console/connections").text

    console.switch_mode("live")

    assert connection_id not in console.get("/console/connections").text
    assert console.get(f"/console/connections/{connection_id}").status_code == 404
    console.switch_mode("test")
    assert console.get(f"/console/connections/{connection_id}").status_code == 200


async def test_bad_query_input_answers_4xx_not_500(
    runtime: Runtime, platform: Platform, console: ConsoleClient
) -> None:
    await add_account(runtime, "ops@example.org")
    console.login("ops@example.org")
    for path in (
        "/console/exports?status=nonsense",
        "/console/webhooks/deliveries?code=abc",
        "/console/webhooks/deliveries/99999999999999999999999",
        "/console/exports/not-a-task",
        "/console/connections/not-a-uuid",
        "/console/failures/consent?kind=%00",
        "/console/exports?page=-3&days=abc",
    ):
        answer = console.get(path)
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
