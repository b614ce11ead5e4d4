"""Acceptance: the consent widget in a real browser, over the real platform and sandbox.

Nothing here is a stand-in. The host page loads `<ehi-stitch-element>` from the platform API
(served over loopback on its own port, backed by a fresh PostgreSQL database); the catalog holds
the sandbox health systems, which run as a real SMART on FHIR server on a third port. The patient
searches, signs in at the sandbox's portal in the popup and answers its consent page; the OAuth
callback page posts the result back to the widget. Each test then checks through the private API
and the database what a customer and an auditor rely on.

Screenshots of every step land in test-artifacts/e2e/real-<test>-<nn>-<step>.png.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.e2e.conftest import PLAYWRIGHT_MISSING, EventLog, HostPages, Screenshot

pytest.importorskip("playwright.async_api", reason=PLAYWRIGHT_MISSING)

from playwright.async_api import Locator, Page, expect
from starlette.applications import Starlette

from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tokens import Tokens, open_tokens
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.testing.servers import ThreadedServer
from tests.integration import conftest as platform_fixtures
from tests.integration.conftest import make_org
from tests.integration.consent import conftest as sandbox_fixtures
from tests.integration.consent.conftest import Platform, endpoint_ids

# The real platform and sandbox fixtures, made visible to pytest in this module. Not the consent
# tests' `browser`: that one is an httpx client and would hide the Playwright browser.
postgres = platform_fixtures.postgres
database_url = platform_fixtures.database_url
runtime = platform_fixtures.runtime
settings = sandbox_fixtures.settings
api = sandbox_fixtures.api
sandbox_app = sandbox_fixtures.sandbox_app
sandbox = sandbox_fixtures.sandbox
platform_clock = sandbox_fixtures.platform_clock

OPEN_BUTTON = "Connect your health records"
HARBOR = "Harbor Health (Sandbox)"
CEDAR = "Cedar Valley Clinics (Sandbox)"
SUMMIT = "Summit Regional Medical Center (Sandbox)"


@pytest.fixture
def screenshot_prefix() -> str:
    return "real-"


@pytest.fixture
async def org(runtime: Runtime, api: ThreadedServer, host_pages: HostPages) -> CreatedOrg:
    # After `api`: its start-up has put the sandbox health systems in the catalog.
    return await make_org(runtime, "Acme Health", origins=[host_pages.origin])


@dataclass
class Widget:
    """One patient's browser tab on the customer's page, and what it takes to drive the widget."""

    page: Page
    events: EventLog
    screenshot: Screenshot
    host_pages: HostPages
    api: ThreadedServer
    sandbox: ThreadedServer
    org: CreatedOrg

    @property
    def auth(self) -> tuple[str, str]:
        pair = self.org.keys["test"]
        return pair.public_id, pair.private_key

    def dialog(self) -> Locator:
        return self.page.locator("ehi-stitch-element dialog")

    def heading(self) -> Locator:
        return self.dialog().get_by_role("heading")

    async def open(self, **attributes: str) -> None:
        """Load the customer's page with the widget and open its dialog."""
        await self.events.attach(self.page)
        public_id = self.org.keys["test"].public_id
        await self.page.goto(
            self.host_pages.embed(
                self.api.url, {"public-id": public_id, "external-id": "user-42", **attributes}
            )
        )
        await self.page.get_by_role("button", name=OPEN_BUTTON).click()
        await expect(self.dialog()).to_be_visible()
        await expect(self.dialog()).to_contain_text("Acme Health")

    async def search(self, query: str, expected_brand: str) -> None:
        """Search the catalog; `expected_brand` must be the one health system found."""
        field = self.page.get_by_label("Search for your health system")
        await field.fill(query)
        await field.press("Enter")
        await expect(self.page.get_by_role("status")).to_have_text("1 health system found.")
        await expect(self.page.get_by_role("button", name=expected_brand)).to_be_visible()

    async def choose(self, brand: str) -> Page:
        """Click a brand card; its one endpoint opens the sign-in popup at once."""
        async with self.page.expect_popup() as popup:
            await self.page.get_by_role("button", name=brand).click()
        opened = await popup.value
        await self.events.wait_for("patient.connection_pending")
        return opened

    async def sign_in(self, popup: Page, username: str, *, decision: str = "Allow") -> None:
        """Log in at the sandbox portal as a persona and answer its consent page."""
        await expect(popup.get_by_label("Username")).to_be_visible()
        await self.screenshot(popup, f"portal-login-{username}")
        await popup.get_by_label("Username").fill(username)
        await popup.get_by_label("Password").fill(f"{username}-sandbox")
        await popup.get_by_role("button", name="Sign in").click()
        answer = popup.get_by_role("button", name=decision)
        await expect(answer).to_be_visible()
        await self.screenshot(popup, f"portal-consent-{username}")
        # The callback page posts the result to the widget and closes its own window.
        async with popup.expect_event("close"):
            await answer.click()

    def read_connection(self, connection_id: str) -> dict[str, Any]:
        """The connection as the customer's backend sees it, with the org's private key."""
        response = httpx.get(
            f"{self.api.url}/v1/bridge/org_connection/{connection_id}", auth=self.auth, timeout=10
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


@pytest.fixture
def widget(
    page: Page,
    events: EventLog,
    screenshot: Screenshot,
    host_pages: HostPages,
    api: ThreadedServer,
    sandbox: ThreadedServer,
    org: CreatedOrg,
) -> Widget:
    return Widget(page, events, screenshot, host_pages, api, sandbox, org)


def query(database_url: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(statement, params).fetchall()


async def sealed_tokens(runtime: Runtime, connection_id: str) -> Tokens:
    """A connection's tokens, opened with the platform's key."""
    async with runtime.database.transaction() as session:
        row = await session.get(ConnectionTokens, connection_id)
        assert row is not None, f"no tokens stored for {connection_id}"
        return open_tokens(runtime.cipher, row)


def every_row_as_text(database_url: str) -> str:
    """Every row of every table twice: as PostgreSQL renders it (bytea as hex) and as Python
    prints it (bytes with their printable characters as they are)."""
    dumps = []
    with psycopg.connect(database_url) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        for (table,) in tables.fetchall():
            name = sql.Identifier(table)
            as_text = conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(name))
            as_values = conn.execute(sql.SQL("SELECT * FROM {}").format(name))
            dumps += [str(as_text.fetchall()), str(as_values.fetchall())]
    return "\n".join(dumps)


# ---- the tests ----------------------------------------------------------------------------------


async def test_a_patient_connects_a_misspelled_health_system(
    widget: Widget, runtime: Runtime, database_url: str
) -> None:
    page, events, shot = widget.page, widget.events, widget.screenshot
    harbor = endpoint_ids(widget.sandbox.url)["harbor"]
    await widget.open()
    await shot(page, "search")

    await widget.search("harbr helth", HARBOR)
    await expect(page.get_by_role("button", name=HARBOR)).to_contain_text("Portland, OR")
    assert (await events.wait_for("search.query"))["data"] == {"query": "harbr helth"}
    await shot(page, "results")

    popup = await widget.choose(HARBOR)
    await expect(widget.heading()).to_have_text(f"Sign in at {HARBOR}")
    await shot(page, "pending")
    await widget.sign_in(popup, "amy")

    success = (await events.wait_for("patient.connection_success"))["data"]
    connection_id = success["org_connection_id"]
    assert uuid.UUID(connection_id).version == 4
    assert success["connection_status"] == "authorized"
    assert success["endpoint_id"] == harbor
    await expect(widget.heading()).to_have_text(f"Connected to {HARBOR}")
    await shot(page, "connected")

    await page.get_by_role("button", name="Done").click()

    await expect(widget.dialog()).to_be_hidden()
    complete = await events.wait_for("widget.complete")
    assert complete["api_mode"] == "test"
    [account] = complete["data"]
    assert {key: account[key] for key in success} == success
    assert (account["brand"]["id"], account["brand"]["name"]) == (success["brand_id"], HARBOR)
    assert (await events.types())[-2:] == ["widget.complete", "widget.close"]
    await shot(page, "closed")

    # The customer's backend reads the connection with its private key.
    read = widget.read_connection(connection_id)
    assert read["org_connection_id"] == connection_id
    assert read["status"] == "authorized"
    assert read["api_mode"] == "test"
    assert read["catalog_endpoint_id"] == harbor
    assert read["catalog_brand_id"] == success["brand_id"]

    # The tokens are sealed: real ones (the sandbox accepts them), unreadable in the database.
    tokens = await sealed_tokens(runtime, connection_id)
    assert tokens.refresh_token
    patient = httpx.get(
        f"{widget.sandbox.url}/harbor/fhir/Patient",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
        timeout=10,
    )
    assert patient.status_code == 200, patient.text
    assert "Harbor-Shaw" in patient.text  # Amy's own record
    token_dump = str(query(database_url, "SELECT * FROM connection_tokens"))
    everything = every_row_as_text(database_url)
    assert connection_id in everything  # the dump does hold this connection's rows
    for secret in (tokens.access_token, tokens.refresh_token):
        assert secret not in token_dump
        assert secret not in everything
        assert secret.encode().hex() not in everything

    [(event,)] = query(
        database_url,
        "SELECT data FROM webhook_events WHERE type = %s",
        "patient.connection_success",
    )
    assert event["org_connection_id"] == connection_id
    assert event["external_id"] == "user-42"
    assert event["connection_status"] == "authorized"
    assert (event["brand_id"], event["endpoint_id"]) == (success["brand_id"], harbor)
    # The callback page posted the result to the embedding page's origin only, not to "*".
    assert query(database_url, "SELECT widget_origin FROM consent_flows") == [
        (widget.host_pages.origin,)
    ]


async def test_two_health_systems_in_one_session(widget: Widget, database_url: str) -> None:
    page, events, shot = widget.page, widget.events, widget.screenshot
    ids = endpoint_ids(widget.sandbox.url)
    await widget.open()
    await widget.search("harbor", HARBOR)
    await shot(page, "first-results")
    await widget.sign_in(await widget.choose(HARBOR), "tina")
    first = (await events.wait_for("patient.connection_success"))["data"]
    await expect(widget.heading()).to_have_text(f"Connected to {HARBOR}")
    await shot(page, "first-connected")

    await page.get_by_role("button", name="Connect another health system").click()
    await widget.search("cedar valley", CEDAR)
    await shot(page, "second-search")
    await widget.sign_in(await widget.choose(CEDAR), "beth")

    second = (await events.wait_for("patient.connection_success", count=2))["data"]
    await expect(widget.dialog().locator("ul.connected li")).to_have_text([HARBOR, CEDAR])
    await shot(page, "both-connected")
    await page.get_by_role("button", name="Done").click()

    complete = (await events.wait_for("widget.complete"))["data"]
    assert [{key: account[key] for key in first} for account in complete] == [first, second]
    assert (first["endpoint_id"], second["endpoint_id"]) == (ids["harbor"], ids["cedar"])
    assert first["org_connection_id"] != second["org_connection_id"]
    assert second["platform_type"] == "epic"
    await shot(page, "closed")
    for account in complete:
        read = widget.read_connection(account["org_connection_id"])
        assert read["status"] == "authorized"
        assert read["catalog_endpoint_id"] == account["endpoint_id"]
    rows = query(database_url, "SELECT catalog_endpoint_id, external_id FROM org_connections")
    assert sorted(rows) == sorted([(ids["harbor"], "user-42"), (ids["cedar"], "user-42")])


async def test_reconnect_signs_in_again_to_the_same_connection(
    widget: Widget, runtime: Runtime, database_url: str
) -> None:
    page, events, shot = widget.page, widget.events, widget.screenshot
    # The connection to renew, made earlier over plain HTTP (the path tests/integration checks).
    with httpx.Client(timeout=20, follow_redirects=False) as client:
        earlier = Platform(widget.api, widget.sandbox, widget.org, client).connect("harbor", "amy")
    assert earlier["status"] == "success", earlier
    connection_id = earlier["org_connection_id"]
    old_tokens = await sealed_tokens(runtime, connection_id)

    await widget.open(**{"reconnect-org-connection-id": connection_id})
    await expect(widget.heading()).to_have_text("Reconnect your health records")
    await shot(page, "reconnect")
    async with page.expect_popup() as opened:
        await page.get_by_role("button", name="Sign in again").click()
    pending = await events.wait_for("patient.connection_pending")
    assert pending["data"]["org_connection_id"] == connection_id
    assert pending["data"]["brand_id"] is None  # nothing chosen: the connection's own system
    popup = await opened.value
    # Back to the connection's own health system, with nothing to choose.
    await popup.wait_for_url(f"{widget.sandbox.url}/harbor/auth/**")
    await widget.sign_in(popup, "amy")

    success = (await events.wait_for("patient.connection_success"))["data"]
    assert success["org_connection_id"] == connection_id
    assert success["connection_status"] == "authorized"
    assert success["endpoint_id"] == earlier["endpoint_id"]
    await expect(widget.heading()).to_have_text("Connected to your health system")
    await shot(page, "reconnected")
    await page.get_by_role("button", name="Done").click()

    complete = (await events.wait_for("widget.complete"))["data"]
    assert [account["org_connection_id"] for account in complete] == [connection_id]
    await shot(page, "closed")
    assert widget.read_connection(connection_id)["status"] == "authorized"
    assert query(database_url, "SELECT org_connection_id FROM org_connections") == [
        (connection_id,)
    ]
    kinds = query(database_url, "SELECT event FROM consent_records ORDER BY id")
    assert [kind for (kind,) in kinds] == ["granted", "reconnected"]
    new_tokens = await sealed_tokens(runtime, connection_id)
    assert new_tokens.access_token != old_tokens.access_token  # the new grant's tokens are kept


async def test_a_patient_who_denies_consent_gets_connection_failed(
    widget: Widget, database_url: str
) -> None:
    page, events, shot = widget.page, widget.events, widget.screenshot
    summit = endpoint_ids(widget.sandbox.url)["summit"]
    await widget.open()
    await widget.search("summit regional", SUMMIT)
    await shot(page, "results")

    await widget.sign_in(await widget.choose(SUMMIT), "tess", decision="Deny")

    pending = (await events.of_type("patient.connection_pending"))[0]["data"]
    failed = (await events.wait_for("patient.connection_failed"))["data"]
    assert failed == {
        **pending,
        "error": "access_denied",
        "error_description": failed["error_description"],
    }
    assert pending["endpoint_id"] == summit
    assert "declined" in failed["error_description"]
    await expect(widget.heading()).to_have_text(f"Couldn\u2019t connect to {SUMMIT}")
    await expect(page.get_by_role("alert")).to_have_text(failed["error_description"])
    await shot(page, "denied")

    await page.get_by_role("button", name="Close").click()

    await events.wait_for("widget.close")
    await expect(widget.dialog()).to_be_hidden()
    await shot(page, "closed")
    assert not {"patient.connection_success", "widget.complete"} & set(await events.types())
    assert query(database_url, "SELECT count(*) FROM org_connections") == [(0,)]
    assert query(
        database_url,
        "SELECT count(*) FROM webhook_events WHERE type = %s",
        "patient.connection_success",
    ) == [(0,)]


# ---- a portal that cuts the popup off from the widget --------------------------------------------


def portal_state(sandbox_app: Starlette) -> SandboxState:
    state: SandboxState = sandbox_app.state.sandbox
    return state


async def finish_without_opener(widget: Widget, popup: Page, database_url: str) -> dict[str, Any]:
    """Sign in at Harbor in a popup that cannot post to the widget; the widget's success."""
    page, events, shot = widget.page, widget.events, widget.screenshot
    await widget.sign_in(popup, "amy")  # the callback page still closes its own window

    success = (await events.wait_for("patient.connection_success"))["data"]
    await expect(widget.heading()).to_have_text(f"Connected to {HARBOR}")
    await shot(page, "connected")
    await page.get_by_role("button", name="Done").click()
    complete = await events.wait_for("widget.complete")
    assert [{key: account[key] for key in success} for account in complete["data"]] == [success]
    assert len(await events.of_type("patient.connection_success")) == 1
    assert "patient.connection_failed" not in await events.types()
    # Delivered by the result handle: read once, and nothing of the result kept after that.
    [(read_at, kept)] = query(database_url, "SELECT result_read_at, result FROM consent_flows")
    assert read_at is not None
    assert kept is None
    return dict(success)


async def test_a_portal_that_severs_the_popup_still_completes_the_widget(
    widget: Widget, sandbox_app: Starlette, database_url: str
) -> None:
    # Harbor's portal answers like Epic MyChart: Cross-Origin-Opener-Policy: same-origin.
    portal_state(sandbox_app).set_faults("harbor", Faults(portal_opener_policy="same-origin"))
    page, shot = widget.page, widget.screenshot
    harbor = endpoint_ids(widget.sandbox.url)["harbor"]
    await widget.open()
    await widget.search("harbor", HARBOR)

    popup = await widget.choose(HARBOR)
    await expect(popup.get_by_label("Username")).to_be_visible()
    assert await popup.evaluate("window.opener === null")  # the browser really cut it off
    # From the widget the popup now looks closed; it says so, and keeps listening.
    await expect(widget.heading()).to_have_text("Sign-in not finished")
    await expect(widget.dialog()).to_contain_text("If you are still signing in there, finish")
    await shot(page, "severed-waiting")

    success = await finish_without_opener(widget, popup, database_url)

    assert success["endpoint_id"] == harbor
    assert success["connection_status"] == "authorized"
    assert uuid.UUID(success["org_connection_id"]).version == 4
    read = widget.read_connection(success["org_connection_id"])
    assert (read["status"], read["catalog_endpoint_id"]) == ("authorized", harbor)
    await shot(page, "closed")


async def test_a_popup_whose_opener_is_gone_still_completes_the_widget(
    widget: Widget, database_url: str
) -> None:
    # Portals may also drop the opener by script; here the callback page never sees one.
    await widget.page.context.add_init_script(
        "if (location.pathname.endsWith('/v1/bridge/callback')) window.opener = null;"
    )
    await widget.open()
    await widget.search("harbor", HARBOR)
    popup = await widget.choose(HARBOR)
    await expect(widget.heading()).to_have_text(f"Sign in at {HARBOR}")  # still visibly open

    success = await finish_without_opener(widget, popup, database_url)

    assert widget.read_connection(success["org_connection_id"])["status"] == "authorized"
