"""Acceptance: a page written for Fasten Connect's Stitch works against ehiconnect (#16 item 1).

The host page is Fasten's own quickstart page (`views/index.html` of its public Node/Express
quickstart, Stitch v4) with one change: the script and stylesheet host. It loads
`/connect/v4/fasten-stitch-element.js` as a module script, links the stylesheet in its `<head>`,
embeds `<fasten-stitch-element public-id=… external-id="1">` and listens for `eventBus` on the
element, logging `JSON.parse(event.detail.data)` as Fasten's docs show. A patient then completes a
sandbox consent through it, in real Chromium, over the real platform and sandbox.
"""

from __future__ import annotations

import html
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PLAYWRIGHT_MISSING, EventLog, HostPages, Screenshot

pytest.importorskip("playwright.async_api", reason=PLAYWRIGHT_MISSING)

from playwright.async_api import ConsoleMessage, Page, expect

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.testing.servers import ThreadedServer
from tests.e2e import test_widget_real as real
from tests.integration.consent.conftest import endpoint_ids

# The real platform and sandbox, as the other acceptance tests use them.
postgres = real.postgres
database_url = real.database_url
runtime = real.runtime
settings = real.settings
api = real.api
sandbox_app = real.sandbox_app
sandbox = real.sandbox
platform_clock = real.platform_clock
org = real.org

# Fasten's quickstart page, verbatim but for the host (and the public id it templates in).
QUICKSTART_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <title>Fasten Stitch</title>

  <script src="{host}/connect/v4/fasten-stitch-element.js" type="module"></script>
  <link rel="stylesheet" href="{host}/connect/v4/fasten-stitch-element.css">

</head>
<body>
  <!-- external-id is hardcoded to the first user in the database for demo purposes -->
  <fasten-stitch-element id="fasten-stitch" external-id="1" public-id="{public_id}"></fasten-stitch-element>
  <script type="application/javascript">
      const el = document.querySelector('fasten-stitch-element');
      el.addEventListener('eventBus', (event) => console.log(JSON.parse(event.detail.data)));
  </script>
</body>
</html>
"""  # noqa: E501 (the page as Fasten writes it)


@pytest.fixture
def screenshot_prefix() -> str:
    return "fasten-"


class HostListener:
    """What the page's own eventBus listener logged (Fasten's `console.log(JSON.parse(...))`)."""

    def __init__(self, page: Page) -> None:
        self._messages: list[ConsoleMessage] = []
        page.on("console", lambda message: self._messages.append(message))

    async def events(self) -> list[dict[str, Any]]:
        logged = []
        for message in self._messages:
            if message.type == "log" and message.args:
                value = await message.args[0].json_value()
                if isinstance(value, dict) and "event_type" in value:
                    logged.append(value)
        return logged


async def test_fastens_quickstart_page_completes_a_sandbox_consent(
    page: Page,
    events: EventLog,
    screenshot: Screenshot,
    host_pages: HostPages,
    api: ThreadedServer,
    sandbox: ThreadedServer,
    org: CreatedOrg,
    runtime: Runtime,
) -> None:
    public_id, private_key = org.keys["test"].public_id, org.keys["test"].private_key
    harbor = endpoint_ids(sandbox.url)["harbor"]
    host = html.escape(api.url.rstrip("/"))
    url = host_pages.add(QUICKSTART_PAGE.format(host=host, public_id=html.escape(public_id)))
    listener = HostListener(page)
    await events.attach(page)
    stylesheet_loads: list[int] = []
    page.on(
        "response",
        lambda response: (
            stylesheet_loads.append(response.status)
            if response.url.endswith("/connect/v4/fasten-stitch-element.css")
            else None
        ),
    )

    await page.goto(url)
    element = page.locator("fasten-stitch-element")
    await page.wait_for_function("() => customElements.get('fasten-stitch-element') !== undefined")
    assert stylesheet_loads == [200]
    await element.get_by_role("button", name="Connect your health records").click()
    dialog = page.locator("fasten-stitch-element dialog")
    await expect(dialog).to_contain_text("Acme Health")
    await screenshot(page, "opened")

    field = page.get_by_label("Search for your health system")
    await field.fill("harbor")
    await field.press("Enter")
    brand = page.get_by_role("button", name=real.HARBOR)
    await expect(brand).to_be_visible()
    async with page.expect_popup() as opened:
        await brand.click()
    popup = await opened.value
    pending = (await events.wait_for("patient.connection_pending"))["data"]
    assert pending == {
        "public_id": public_id,
        "brand_id": pending["brand_id"],
        "portal_id": pending["portal_id"],
        "endpoint_id": harbor,
        "external_id": "1",
        "external_state": None,
        "org_connection_id": None,
    }

    await expect(popup.get_by_label("Username")).to_be_visible()
    await popup.get_by_label("Username").fill("amy")
    await popup.get_by_label("Password").fill("amy-sandbox")
    await popup.get_by_role("button", name="Sign in").click()
    async with popup.expect_event("close"):
        await popup.get_by_role("button", name="Allow").click()

    success = (await events.wait_for("patient.connection_success"))["data"]
    assert uuid.UUID(success["org_connection_id"]).version == 4
    assert success["connection_status"] == "authorized"
    assert success["external_id"] == "1"
    await screenshot(page, "connected")
    await page.get_by_role("button", name="Done").click()

    complete = await events.wait_for("widget.complete")
    assert complete["api_mode"] == "test"
    [account] = complete["data"]
    assert {key: account[key] for key in success} == success
    assert account["brand"]["id"] == success["brand_id"]
    assert account["brand"]["name"] == real.HARBOR
    assert account["portal"]["id"] == success["portal_id"]
    assert account["endpoint"] == {"id": harbor, "platform_type": success["platform_type"]}
    await events.wait_for("widget.close")

    # The page's own listener on the element, exactly as Fasten's docs write it, saw the same.
    logged = await listener.events()
    assert [event["event_type"] for event in logged] == await events.types()
    assert logged[-2] == complete

    # The customer's backend reads the connection as it would from Fasten (Bearer private key).
    read = httpx.get(
        f"{api.url}/v1/bridge/org_connection/{success['org_connection_id']}",
        headers={"Authorization": f"Bearer {private_key}"},
        timeout=10,
    )
    assert read.status_code == 200, read.text
    assert read.json()["data"]["status"] == "authorized"
    assert read.json()["data"]["catalog_endpoint_id"] == harbor


async def test_a_patient_who_cannot_find_their_health_system_asks_for_it(
    page: Page,
    events: EventLog,
    screenshot: Screenshot,
    host_pages: HostPages,
    api: ThreadedServer,
    org: CreatedOrg,
    database_url: str,
) -> None:
    """Fasten's documented `email` attribute prefills the request form (#16 item 4)."""
    public_id = org.keys["test"].public_id
    quickstart = QUICKSTART_PAGE.format(host=html.escape(api.url.rstrip("/")), public_id=public_id)
    with_email = quickstart.replace('external-id="1"', 'external-id="1" email="amy@example.com"')
    await events.attach(page)
    await page.goto(host_pages.add(with_email))
    await page.get_by_role("button", name="Connect your health records").click()
    field = page.get_by_label("Search for your health system")
    await field.fill("riverside family practice")
    await field.press("Enter")
    await expect(page.get_by_role("status")).to_contain_text("No health systems match")

    await page.get_by_role("button", name="Can\u2019t find your health system?").click()
    await expect(page.get_by_label("Your email")).to_have_value("amy@example.com")
    await expect(page.get_by_label("Subject")).to_have_value("Please add riverside family practice")
    await page.get_by_label("Your name").fill("Amy Patient")
    await page.get_by_label("Which health system?").fill("Riverside Family Practice, Boise ID")
    await screenshot(page, "support-form")
    await page.get_by_role("button", name="Send request").click()

    await expect(page.locator("fasten-stitch-element dialog").get_by_role("heading")).to_have_text(
        "Request sent"
    )
    rows = real.query(
        database_url,
        "SELECT s.email, s.name, s.subject, s.body, s.external_id, e.type "
        "FROM support_requests s JOIN webhook_events e USING (event_id)",
    )
    assert rows == [
        (
            "amy@example.com",
            "Amy Patient",
            "Please add riverside family practice",
            "Riverside Family Practice, Boise ID",
            "1",
            "patient.request_health_system",
        )
    ]
