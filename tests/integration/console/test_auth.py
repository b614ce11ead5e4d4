"""Console accounts over HTTP: login, cookies, sessions in PostgreSQL, CSRF, lockout, logout."""

from __future__ import annotations

import hashlib

import httpx
import psycopg

from ehiconnect.api.app import create_app
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.consent.conftest import Platform
from tests.integration.console.support import (
    PASSWORD,
    ConsoleClient,
    add_account,
    console_client,
)


def rows(database_url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(statement, params).fetchall()


async def test_an_operator_signs_in_and_gets_a_hardened_session_cookie(
    runtime: Runtime, api: ThreadedServer, console: ConsoleClient, database_url: str
) -> None:
    await add_account(runtime, "Ops@Example.org")
    assert console.get("/console/").status_code == 303  # not signed in: to the login page
    assert console.get("/console/").headers["location"] == "/console/login?next=/console/"

    response = console.try_login("ops@example.org", PASSWORD)

    assert response.status_code == 303
    cookie = next(
        c
        for c in response.headers.get_list("set-cookie")
        if c.startswith("ehiconnect_platform_console=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "path=/console/" in cookie.lower()
    assert "secure" not in attributes  # plain http on loopback
    page = console.get("/console/")
    assert page.status_code == 200
    assert "Overview" in page.text
    assert "ops@example.org (operator)" in page.text
    # The cookie's value is stored only as its SHA-256.
    value = console.http.cookies["ehiconnect_platform_console"]
    [(stored,)] = rows(database_url, "SELECT id_hash FROM console_sessions")
    assert stored == hashlib.sha256(value.encode()).hexdigest()
    assert value not in str(rows(database_url, "SELECT * FROM console_sessions"))
    actions = [a for (a,) in rows(database_url, "SELECT action FROM audit_log ORDER BY id")]
    assert "console.login" in actions


async def test_the_cookie_is_secure_behind_an_https_proxy(
    runtime: Runtime, settings: Settings, api: ThreadedServer
) -> None:
    await add_account(runtime, "ops@example.org")

    def login_cookie(base_url: str) -> str:
        with console_client(base_url) as http:
            client = ConsoleClient(http)
            token = client.login_form()
            response = http.post(
                "/console/login",
                data={"email": "ops@example.org", "password": PASSWORD, "login_token": token},
                headers={"X-Forwarded-Proto": "https"},
            )
            assert response.status_code == 303, response.text
            return next(
                c
                for c in response.headers.get_list("set-cookie")
                if c.startswith("ehiconnect_platform_console=")
            )

    def flags(cookie: str) -> set[str]:
        return {part.strip().split("=")[0].lower() for part in cookie.split(";")}

    # Not a trusted proxy: a forged X-Forwarded-Proto changes nothing.
    assert "secure" not in flags(login_cookie(api.url))
    behind_proxy = settings.model_copy(deep=True)
    behind_proxy.api.trusted_proxies = ["127.0.0.1"]
    with serve_in_thread(create_app(behind_proxy)) as proxied:
        assert "secure" in flags(login_cookie(proxied.url))


async def test_another_api_process_reads_the_same_session(
    runtime: Runtime, api: ThreadedServer, console: ConsoleClient, settings: Settings
) -> None:
    await add_account(runtime, "ops@example.org")
    console.login("ops@example.org")
    cookie = console.http.cookies["ehiconnect_platform_console"]
    with serve_in_thread(create_app(settings)) as second:
        page = httpx.get(
            f"{second.url}/console/",
            cookies={"ehiconnect_platform_console": cookie},
            headers={"Accept": "text/html"},
            timeout=20,
        )
    assert page.status_code == 200
    assert "ops@example.org" in page.text


async def test_five_wrong_passwords_lock_the_account(
    runtime: Runtime, api: ThreadedServer, console: ConsoleClient, database_url: str
) -> None:
    await add_account(runtime, "ops@example.org")
    for _ in range(4):
        wrong = console.try_login("ops@example.org", "not the password!")
        assert wrong.status_code == 401
        assert "do not match" in wrong.text
    fifth = console.try_login("ops@example.org", "not the password!")
    assert fifth.status_code == 429
    assert "locked" in fifth.text

    # Locked: even the right password is refused, and no session is made.
    refused = console.try_login("ops@example.org", PASSWORD)
    assert refused.status_code == 429
    assert "ehiconnect_platform_console=" not in refused.headers.get("set-cookie", "")
    assert rows(database_url, "SELECT count(*) FROM console_sessions") == [(0,)]
    [(locked_until,)] = rows(database_url, "SELECT locked_until FROM console_users")
    assert locked_until is not None
    actions = [a for (a,) in rows(database_url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("console.login_failed") == 4
    assert "console.locked" in actions
    assert "console.login_refused" in actions


async def test_a_wrong_email_answers_like_a_wrong_password(
    runtime: Runtime, api: ThreadedServer, console: ConsoleClient
) -> None:
    await add_account(runtime, "ops@example.org")
    unknown = console.try_login("nobody@example.org", PASSWORD)
    wrong = console.try_login("ops@example.org", "not the password!")
    assert unknown.status_code == wrong.status_code == 401


async def test_posts_without_the_sessions_csrf_token_are_refused(
    runtime: Runtime,
    platform: Platform,
    org: CreatedOrg,
    console: ConsoleClient,
    other_console: ConsoleClient,
    database_url: str,
) -> None:
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    await add_account(runtime, "ops@example.org")
    await add_account(runtime, "other@example.org")
    console.login("ops@example.org")
    other_console.login("other@example.org")
    revoke = f"/console/connections/{connection_id}/revoke"

    missing = console.post(revoke)
    wrong = console.post(revoke, {"csrf_token": "x" * 43})
    someone_elses = console.post(revoke, {"csrf_token": other_console.csrf()})

    for refused in (missing, wrong, someone_elses):
        assert refused.status_code == 403
        assert "csrf_failed" in refused.text
    assert rows(database_url, "SELECT status FROM org_connections") == [("authorized",)]
    # A JSON client gets the envelope.
    envelope = console.http.post(revoke, data={})
    assert envelope.status_code == 403
    assert envelope.json()["error"] == "csrf_failed"
    # The login form has its own token (double submit): a cross-site login is refused.
    forged = console.http.post(
        "/console/login",
        data={"email": "ops@example.org", "password": PASSWORD, "login_token": "forged"},
    )
    assert forged.status_code == 403

    accepted = console.post(revoke, {"csrf_token": console.csrf()})
    assert accepted.status_code == 303
    assert rows(database_url, "SELECT status FROM org_connections") == [("revoked",)]
    events = rows(database_url, "SELECT type FROM webhook_events ORDER BY created_at")
    assert ("patient.authorization_revoked",) in events
    actions = [a for (a,) in rows(database_url, "SELECT action FROM audit_log")]
    assert "console.connection_revoked" in actions
    assert "console.csrf_refused" in actions


async def test_logout_ends_the_session_everywhere(
    runtime: Runtime, api: ThreadedServer, console: ConsoleClient, database_url: str
) -> None:
    await add_account(runtime, "ops@example.org")
    console.login("ops@example.org")
    cookie = console.http.cookies["ehiconnect_platform_console"]
    out = console.post("/console/logout", {"csrf_token": console.csrf()})
    assert out.status_code == 303
    assert rows(database_url, "SELECT count(*) FROM console_sessions") == [(0,)]
    console.http.cookies.set("ehiconnect_platform_console", cookie, path="/console/")
    assert console.get("/console/").status_code == 303  # the old cookie opens nothing
