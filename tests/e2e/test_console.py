"""Acceptance: the platform console in a real browser, over the real platform and sandbox.

An operator and a customer sign in; the data they look at comes from real consents at the
sandbox health systems, real exports run by the job queue (one fails: the health system refuses
the refresh token), and real webhook deliveries to a receiver that answers 500 until it is fixed.
Screenshots of every page land in test-artifacts/e2e/console-<test>-<nn>-<step>.png, and every
page a screenshot is taken of passes axe-core (no serious or critical violation).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import PLAYWRIGHT_MISSING, Screenshot, new_context

pytest.importorskip("playwright.async_api", reason=PLAYWRIGHT_MISSING)

from playwright.async_api import Browser, Locator, Page, expect

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.e2e.axe_support import axe_source, check_accessibility
from tests.e2e.conftest import PHONE
from tests.e2e.doc_images import doc_image
from tests.integration import conftest as platform_fixtures
from tests.integration.conftest import make_org
from tests.integration.consent import conftest as sandbox_fixtures
from tests.integration.consent.conftest import APP_ORIGIN, APP_REDIRECT, Platform
from tests.integration.console.support import PASSWORD, add_account, deliver_once
from tests.integration.exports.support import drain, start
from tests.integration.webhooks.helpers import add_endpoint
from tests.integration.webhooks.receiver import Receiver

postgres = platform_fixtures.postgres
database_url = platform_fixtures.database_url
runtime = platform_fixtures.runtime
settings = sandbox_fixtures.settings
api = sandbox_fixtures.api
sandbox_app = sandbox_fixtures.sandbox_app
sandbox = sandbox_fixtures.sandbox
sandbox_state = sandbox_fixtures.sandbox_state
platform_clock = sandbox_fixtures.platform_clock

HARBOR = "Harbor Health (Sandbox)"
axe_source = axe_source  # the session fixture, re-exported for this module


@pytest.fixture
def screenshot(screenshot: Screenshot, axe_source: str) -> Screenshot:
    """The conftest's screenshot, after axe-core found no serious or critical violation."""

    async def checked(page: Page, step: str) -> Path:
        await check_accessibility(page, axe_source, step)
        return await screenshot(page, step)

    return checked


@pytest.fixture
def screenshot_prefix() -> str:
    return "console-"


@pytest.fixture
async def org(runtime: Runtime, api: ThreadedServer) -> CreatedOrg:
    return await make_org(
        runtime, "Acme Health", redirect_uris=[APP_REDIRECT], origins=[APP_ORIGIN]
    )


@pytest.fixture
def platform(api: ThreadedServer, sandbox: ThreadedServer, org: CreatedOrg) -> Iterator[Platform]:
    with httpx.Client(timeout=20, follow_redirects=False) as client:
        yield Platform(api=api, sandbox=sandbox, org=org, browser=client)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(default_status=500)


@pytest.fixture
def receiver_server(receiver: Receiver) -> Iterator[ThreadedServer]:
    with serve_in_thread(receiver) as server:
        yield server


def nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Console pages").get_by_role("link", name=name)


async def sign_in(page: Page, api: ThreadedServer, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{api.url}/console/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_operator_reviews_exports_failures_and_resends_a_webhook(
    page: Page,
    browser: Browser,
    screenshot: Screenshot,
    api: ThreadedServer,
    runtime: Runtime,
    platform: Platform,
    org: CreatedOrg,
    sandbox_state: SandboxState,
    receiver: Receiver,
    receiver_server: ThreadedServer,
) -> None:
    await add_account(runtime, "ops@example.org")
    await add_endpoint(runtime, org.org_id, f"{receiver_server.url}/hooks")
    amy = platform.connect("harbor", "amy")["org_connection_id"]
    running = start(platform, amy)

    await page.goto(f"{api.url}/console/")
    await screenshot(page, "login")
    await sign_in(page, api, "ops@example.org")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # A connection, with its consent.
    await nav(page, "Connections").click()
    row = page.get_by_role("row").filter(has_text=amy)
    await expect(row).to_contain_text(HARBOR)
    await expect(row).to_contain_text("authorized")
    await expect(row).to_contain_text("Acme Health")
    await screenshot(page, "connections")
    await row.get_by_role("link", name=amy).click()
    await expect(page.get_by_role("heading", name=f"Connection {amy}")).to_be_visible()
    await expect(page.locator("main")).to_contain_text("granted")
    await screenshot(page, "connection")

    # An export with its progress, updating by itself while the queue runs it.
    await page.goto(f"{api.url}/console/exports/{running}")
    await expect(page.locator("#export-status")).to_have_text("pending")
    await screenshot(page, "export-pending")
    await drain(runtime)
    await expect(page.locator("#export-status")).to_have_text("success", timeout=15_000)
    await expect(page.locator("#export-phase")).to_have_text("done")
    resources = int(await page.locator("#export-resources").inner_text())
    assert resources > 0
    await page.reload()
    await expect(page.get_by_role("heading", name="Resources by type")).to_be_visible()
    await expect(page.get_by_role("row", name="Patient")).to_contain_text("1")
    await screenshot(page, "export-success")

    # An export that fails: the health system refuses the refresh token (invalid_grant).
    tina = platform.connect("harbor", "tina")["org_connection_id"]
    sandbox_state.set_faults(
        "harbor", Faults(expire_access_tokens_after=2, refresh_invalid_grant=True)
    )
    failing = start(platform, tina)
    await drain(runtime)
    await deliver_once(runtime)  # every event to the receiver, which answers 500

    await nav(page, "Overview").click()
    await expect(page.locator(".card").filter(has_text="Failed")).to_contain_text("1")
    await expect(page.get_by_role("row", name="token_refresh_failure")).to_be_visible()
    await screenshot(page, "overview")

    await nav(page, "Failure review").click()
    await expect(page.get_by_role("heading", name="Failure review")).to_be_visible()
    exports = page.locator("section").filter(has=page.get_by_role("heading", name="Exports"))
    group = exports.get_by_role("row").filter(has_text="token_refresh_failure")
    await expect(group).to_contain_text(HARBOR)
    consent = page.locator("section").filter(has=page.get_by_role("heading", name="Consent"))
    await expect(consent).to_contain_text("refresh refused: invalid_grant")
    hooks = page.locator("section").filter(
        has=page.get_by_role("heading", name="Webhook deliveries")
    )
    await expect(hooks.get_by_role("row").filter(has_text="HTTP 500")).to_contain_text(
        receiver_server.url
    )
    await screenshot(page, "failures")
    await doc_image(page, "console-failure-review")

    # From the group to the case: the failed export and its reason.
    await group.get_by_role("link", name="Cases").click()
    await expect(page.get_by_role("heading", name="Exports")).to_be_visible()
    await screenshot(page, "exports-failed")
    await page.get_by_role("link", name=failing).click()
    await expect(page.locator("#failure-reason")).to_have_text("token_refresh_failure")
    await screenshot(page, "export-failed")

    # A failed webhook delivery, its attempts, and a resend once the receiver is fixed.
    await page.goto(f"{api.url}/console/failures")
    await (
        hooks.get_by_role("row")
        .filter(has_text="HTTP 500")
        .get_by_role("link", name="Cases")
        .click()
    )
    await expect(page.get_by_role("heading", name="Webhook deliveries")).to_be_visible()
    await screenshot(page, "deliveries")
    await (
        page.get_by_role("row")
        .filter(has_text="patient.ehi_export_failed")
        .get_by_role("link")
        .click()
    )
    attempts = page.locator("table").last
    await expect(attempts).to_contain_text("500")
    await expect(attempts).to_contain_text("failed")
    await screenshot(page, "delivery-failed")
    sent_before = len(receiver.received)
    receiver.default_status = 200
    await page.get_by_role("button", name="Resend").click()
    await expect(page.get_by_role("status")).to_contain_text("queued to be sent again")
    await deliver_once(runtime)
    await page.reload()
    await expect(page.locator("#delivery-status")).to_have_text("succeeded")
    await expect(page.locator("table").last.get_by_role("row").nth(1)).to_contain_text("200")
    await screenshot(page, "delivery-resent")
    resent = receiver.received[sent_before:]
    # Other events due for a retry go out in the same pass, in no set order.
    assert "patient.ehi_export_failed" in [r.envelope["type"] for r in resent]

    await nav(page, "Webhooks").click()
    await expect(page.locator("main")).to_contain_text(receiver_server.url)
    await screenshot(page, "webhooks")

    # The same pages at a phone's width.
    phone = await new_context(browser, PHONE)
    try:
        small = await phone.new_page()
        await sign_in(small, api, "ops@example.org")
        await expect(small.get_by_role("heading", name="Overview")).to_be_visible()
        await screenshot(small, "phone-overview")
        await small.goto(f"{api.url}/console/failures")
        await screenshot(small, "phone-failures")
        width = await small.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]  # tables scroll inside their box, the page does not
    finally:
        await phone.close()


async def test_a_customer_sees_its_connection_and_is_locked_after_five_wrong_passwords(
    page: Page,
    screenshot: Screenshot,
    api: ThreadedServer,
    runtime: Runtime,
    platform: Platform,
    org: CreatedOrg,
) -> None:
    amy = platform.connect("harbor", "amy")["org_connection_id"]
    other = await make_org(runtime, "Globex")
    await add_account(runtime, "me@acme.example", org_id=org.org_id)
    await add_account(runtime, "me@globex.example", org_id=other.org_id)

    await sign_in(page, api, "me@acme.example")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await nav(page, "Connections").click()
    await expect(page.get_by_role("row").filter(has_text=amy)).to_contain_text(HARBOR)
    await screenshot(page, "customer-connections")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # Another customer neither lists it nor opens it by URL.
    await sign_in(page, api, "me@globex.example")
    await page.goto(f"{api.url}/console/connections/{amy}")
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await screenshot(page, "customer-other-org")
    await page.get_by_role("button", name="Sign out").click()

    for attempt in range(5):
        await sign_in(page, api, "me@acme.example", "a wrong password")
        message = "locked" if attempt == 4 else "do not match"
        await expect(page.get_by_role("alert")).to_contain_text(message)
    await sign_in(page, api, "me@acme.example")
    await expect(page.get_by_role("alert")).to_contain_text("locked")
    await screenshot(page, "locked")


async def test_operator_manages_an_endpoint_rotates_a_key_and_searches_the_catalog(
    page: Page,
    browser: Browser,
    screenshot: Screenshot,
    api: ThreadedServer,
    runtime: Runtime,
    platform: Platform,
    org: CreatedOrg,
    receiver_server: ThreadedServer,
    receiver: Receiver,
) -> None:
    receiver.default_status = 200
    await add_account(runtime, "ops@example.org")
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_in(page, api, "ops@example.org")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # Add an endpoint: its signing secret is shown once.
    await nav(page, "Webhooks").click()
    await page.get_by_label("Organization").select_option(label="Acme Health")
    await page.get_by_label("URL").fill(f"{receiver_server.url}/hooks")
    await page.get_by_role("button", name="Add endpoint").click()
    await expect(page.get_by_role("heading", name="Webhook endpoint added")).to_be_visible()
    secret = await page.locator("#shown-once").inner_text()
    assert secret.startswith("whsec_")
    await screenshot(page, "endpoint-added")
    await page.get_by_role("link", name="Done").click()
    endpoints = page.locator("table").first  # the endpoints (then recent deliveries)
    row = endpoints.get_by_role("row").filter(has_text=f"{receiver_server.url}/hooks")
    await expect(row).to_contain_text("enabled")
    await expect(page.locator("main")).not_to_contain_text(secret)
    await screenshot(page, "webhooks-manage")

    # Send a test event; the queue delivers it to the receiver.
    await row.get_by_role("button", name="Send test").click()
    await expect(page.get_by_role("status")).to_contain_text("webhook.test event is queued")
    await deliver_once(runtime)
    assert [r.envelope["type"] for r in receiver.received][-1] == "webhook.test"
    await page.reload()
    await expect(page.get_by_role("row").filter(has_text="webhook.test")).to_contain_text(
        "succeeded"
    )

    # Disable and enable again; rotate the secret (shown once, different).
    await nav(page, "Webhooks").click()
    await row.get_by_role("button", name="Disable").click()
    await expect(page.get_by_role("status")).to_contain_text("disabled")
    await expect(row).to_contain_text("disabled")
    await row.get_by_role("button", name="Enable").click()
    await expect(row).to_contain_text("enabled")
    await row.get_by_role("button", name="Rotate secret").click()
    await expect(page.get_by_role("heading", name="New signing secret")).to_be_visible()
    assert (await page.locator("#shown-once").inner_text()) not in ("", secret)

    # Rotate the organization's test private key: shown once.
    await nav(page, "Keys").click()
    keys_row = page.get_by_role("row").filter(has_text="Acme Health")
    await expect(keys_row).to_contain_text(org.keys["test"].public_id)
    await screenshot(page, "keys")
    await keys_row.get_by_role("button", name="Rotate").click()
    await expect(page.get_by_role("heading", name="New private key")).to_be_visible()
    assert (await page.locator("#shown-once").inner_text()).startswith("private_test_")

    # The catalog: search, then an endpoint's settings.
    await nav(page, "Catalog").click()
    await page.get_by_label("Health system, alias or city").fill("Harbor")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("row").filter(has_text=HARBOR)).to_be_visible()
    await screenshot(page, "catalog")
    await page.get_by_role("row").filter(has_text=HARBOR).get_by_role("link").first.click()
    await expect(page.locator("main")).to_contain_text("Token endpoint")
    await screenshot(page, "catalog-endpoint")

    # The management pages at a phone's width: no sideways scrolling of the page, axe clean.
    phone = await new_context(browser, PHONE)
    try:
        small = await phone.new_page()
        await sign_in(small, api, "ops@example.org")
        await expect(small.get_by_role("heading", name="Overview")).to_be_visible()
        for path in ("/console/webhooks", "/console/keys", "/console/catalog?q=Harbor"):
            await small.goto(f"{api.url}{path}")
            width = await small.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], path
            await screenshot(small, "phone-" + path.split("/")[2].split("?")[0])
    finally:
        await phone.close()
