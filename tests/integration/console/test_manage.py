"""Managing webhook endpoints and keys from the console, and the operators' catalog pages, over
real HTTP: the CLI's services, secrets shown once, CSRF, another organization's objects refused,
every action in the audit log with the console account as its actor."""

from __future__ import annotations

import re

import httpx
import psycopg

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.testing.servers import ThreadedServer
from tests.integration.conftest import make_org
from tests.integration.consent.conftest import Platform, endpoint_ids
from tests.integration.console.support import ConsoleClient, add_account
from tests.integration.webhooks.helpers import add_endpoint

_SHOWN_ONCE = re.compile(r'id="shown-once"[^>]*>([^<]+)<')


def rows(database_url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(statement, params).fetchall()


def shown_once(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    match = _SHOWN_ONCE.search(page.text)
    assert match, page.text
    return match.group(1)


def account_id(database_url: str, email: str) -> str:
    [(user_id,)] = rows(database_url, "SELECT user_id FROM console_users WHERE email = %s", email)
    return str(user_id)


async def test_a_customer_adds_disables_enables_rotates_and_tests_an_endpoint(
    runtime: Runtime, org: CreatedOrg, console: ConsoleClient, database_url: str
) -> None:
    await add_account(runtime, "me@acme.example", org_id=org.org_id)
    console.login("me@acme.example")
    actor = f"console:{account_id(database_url, 'me@acme.example')}"

    token = console.csrf("/console/webhooks")
    refused = console.post(
        "/console/webhooks/endpoints", {"csrf_token": token, "url": "http://0x7f.1/hook"}
    )
    assert refused.status_code == 400
    assert "invalid webhook URL" in refused.text
    added = console.post(
        "/console/webhooks/endpoints",
        {"csrf_token": token, "url": "http://127.0.0.1:9/hook", "events": "webhook.test"},
    )
    secret = shown_once(added)
    assert secret.startswith("whsec_")
    assert added.headers["cache-control"] == "no-store"
    [(endpoint_id, owner, mode, types)] = rows(
        database_url, "SELECT endpoint_id, org_id, api_mode, event_types FROM webhook_endpoints"
    )
    assert (owner, mode, types) == (org.org_id, "test", ["webhook.test"])
    listing = console.get("/console/webhooks")
    assert "http://127.0.0.1:9/hook" in listing.text
    assert secret not in listing.text  # shown once, in the answer to the POST only

    base = f"/console/webhooks/endpoints/{endpoint_id}"
    assert console.post(f"{base}/disable", {"csrf_token": token}).status_code == 303
    assert rows(database_url, "SELECT status FROM webhook_endpoints") == [("disabled",)]
    assert console.post(f"{base}/enable", {"csrf_token": token}).status_code == 303
    assert rows(database_url, "SELECT status FROM webhook_endpoints") == [("enabled",)]
    rotated = shown_once(console.post(f"{base}/rotate-secret", {"csrf_token": token}))
    assert rotated.startswith("whsec_")
    assert rotated != secret
    tested = console.post(f"{base}/test", {"csrf_token": token})
    assert tested.status_code == 303
    assert "tested=1" in tested.headers["location"]
    assert rows(
        database_url,
        "SELECT e.type FROM webhook_deliveries d JOIN webhook_events e USING (event_id) "
        "WHERE d.endpoint_id = %s",
        endpoint_id,
    ) == [("webhook.test",)]

    actions = {
        str(a)
        for (a,) in rows(database_url, "SELECT action FROM audit_log WHERE actor = %s", actor)
    }
    assert {
        "webhook_endpoint.added",
        "webhook_endpoint.disabled",
        "webhook_endpoint.enabled",
        "webhook_endpoint.secret_rotated",
        "console.webhook_test_sent",
    } <= actions
    assert secret not in str(rows(database_url, "SELECT detail FROM audit_log"))


async def test_another_organizations_endpoint_and_keys_answer_404(
    runtime: Runtime, org: CreatedOrg, console: ConsoleClient, database_url: str
) -> None:
    acme_endpoint = await add_endpoint(runtime, org.org_id, "http://127.0.0.1:9/acme")
    other = await make_org(runtime, "Globex")
    await add_account(runtime, "me@globex.example", org_id=other.org_id)
    console.login("me@globex.example")
    token = console.csrf()

    base = f"/console/webhooks/endpoints/{acme_endpoint.endpoint_id}"
    for action in ("disable", "enable", "rotate-secret", "test"):
        assert console.post(f"{base}/{action}", {"csrf_token": token}).status_code == 404, action
    assert rows(database_url, "SELECT status FROM webhook_endpoints") == [("enabled",)]
    # Adding for another organization: a customer's org_id field is ignored, its own is used.
    shown_once(
        console.post(
            "/console/webhooks/endpoints",
            {"csrf_token": token, "url": "http://127.0.0.1:9/globex", "org_id": org.org_id},
        )
    )
    assert rows(
        database_url, "SELECT org_id FROM webhook_endpoints WHERE url LIKE %s", "%globex"
    ) == [(other.org_id,)]

    keys = console.get("/console/keys")
    assert keys.status_code == 200
    assert org.keys["test"].public_id not in keys.text
    assert other.keys["test"].public_id in keys.text
    stolen = console.post("/console/keys/rotate", {"csrf_token": token, "org_id": org.org_id})
    assert stolen.status_code == 404
    assert rows(database_url, "SELECT count(*) FROM audit_log WHERE action = 'key.rotated'") == [
        (0,)
    ]


async def test_posts_without_the_csrf_token_change_nothing(
    runtime: Runtime, org: CreatedOrg, console: ConsoleClient, database_url: str
) -> None:
    endpoint = await add_endpoint(runtime, org.org_id, "http://127.0.0.1:9/acme")
    await add_account(runtime, "ops@example.org")
    console.login("ops@example.org")
    base = f"/console/webhooks/endpoints/{endpoint.endpoint_id}"
    for path, data in [
        (f"{base}/disable", {}),
        (f"{base}/rotate-secret", {}),
        (f"{base}/test", {}),
        ("/console/webhooks/endpoints", {"url": "http://127.0.0.1:9/x", "org_id": org.org_id}),
        ("/console/keys/rotate", {"org_id": org.org_id}),
    ]:
        answer = console.post(path, data)
        assert answer.status_code == 403, path
        assert "csrf_failed" in answer.text
    assert rows(database_url, "SELECT status FROM webhook_endpoints") == [("enabled",)]
    assert rows(database_url, "SELECT count(*) FROM webhook_endpoint_secrets") == [(1,)]
    assert rows(database_url, "SELECT count(*) FROM audit_log WHERE action = 'key.rotated'") == [
        (0,)
    ]


async def test_a_rotated_private_key_is_shown_once_and_works(
    runtime: Runtime,
    api: ThreadedServer,
    org: CreatedOrg,
    console: ConsoleClient,
    database_url: str,
) -> None:
    await add_account(runtime, "me@acme.example", org_id=org.org_id)
    console.login("me@acme.example")
    page = console.get("/console/keys")
    assert org.keys["test"].public_id in page.text

    answer = console.post(
        "/console/keys/rotate", {"csrf_token": console.csrf("/console/keys"), "org_id": org.org_id}
    )
    private_key = shown_once(answer)
    assert private_key.startswith("private_test_")
    assert private_key != org.keys["test"].private_key
    assert private_key not in console.get("/console/keys").text
    with httpx.Client(base_url=api.url, timeout=10) as client:
        catalog = client.get(
            "/v1/bridge/catalog/export", auth=(org.keys["test"].public_id, private_key)
        )
    assert catalog.status_code == 200, catalog.text
    [(actor,)] = rows(database_url, "SELECT actor FROM audit_log WHERE action = 'key.rotated'")
    assert actor == f"console:{account_id(database_url, 'me@acme.example')}"


async def test_operators_search_the_catalog_and_see_an_endpoints_settings(
    runtime: Runtime, platform: Platform, console: ConsoleClient, other_console: ConsoleClient
) -> None:
    harbor = endpoint_ids(platform.sandbox.url)["harbor"]
    await add_account(runtime, "ops@example.org")
    console.login("ops@example.org")
    found = console.get("/console/catalog?q=Harbor")
    assert found.status_code == 200
    assert "Harbor Health (Sandbox)" in found.text
    assert f"/console/catalog/endpoints/{harbor}" in found.text
    detail = console.get(f"/console/catalog/endpoints/{harbor}")
    assert detail.status_code == 200
    assert "Token endpoint" in detail.text
    assert "Client secret" in detail.text
    assert console.get("/console/catalog/endpoints/nope").status_code == 404

    await add_account(runtime, "me@acme.example", org_id=platform.org.org_id)
    other_console.login("me@acme.example")
    assert 'href="/console/catalog"' not in other_console.get("/console/").text
    for path in ("/console/catalog", f"/console/catalog/endpoints/{harbor}"):
        refused = other_console.get(path)
        assert refused.status_code == 403, path
        assert "Harbor" not in refused.text
