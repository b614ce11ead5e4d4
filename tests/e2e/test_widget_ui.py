"""The consent widget in a real browser, against a stand-in for the platform's bridge API.

The stand-in (FakePlatform) answers only what the widget calls: the organization card, catalog
search, connect/reconnect (302 to a fake portal), and the OAuth callback, which renders the real
callback page. It is acceptable here because these tests are about the widget's UI and its
protocol with the callback page; the end-to-end test over the real backend and the sandbox health
systems reuses the fixtures in conftest.py.

The host page and the platform run on different loopback ports, so every widget request is a real
cross-origin request and every postMessage crosses origins.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import PLAYWRIGHT_MISSING, EventLog, HostPages, Screenshot

pytest.importorskip("playwright.async_api", reason=PLAYWRIGHT_MISSING)

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from playwright.async_api import BrowserContext, Locator, Page, expect

from ehiconnect.api.routes import widget as widget_routes
from ehiconnect.consent.pkce import s256_challenge
from ehiconnect.testing.servers import serve_in_thread
from ehiconnect.widget import failure_result, render_callback_page, success_result

PUBLIC_ID = "public_test_acme"
OPEN_BUTTON = "Connect your health records"
POPUP_BLOCKED = (
    "Your browser blocked the sign-in window. Allow pop-ups for this site and try again."
)
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


def without_challenge(connect: dict[str, str]) -> dict[str, str]:
    """A recorded connect request less its result_challenge, which is new every time."""
    assert CHALLENGE.fullmatch(connect.get("result_challenge", "")), connect
    return {k: v for k, v in connect.items() if k != "result_challenge"}


def _endpoint(endpoint_id: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": endpoint_id,
        "url": f"https://fhir.example.org/{endpoint_id}/R4",
        "platform_type": "epic",
        "status": status,
    }


def _brand(
    brand_id: str,
    name: str,
    city: str,
    state: str,
    portals: list[dict[str, Any]],
    logo: str | None = None,
) -> dict[str, Any]:
    return {
        "id": brand_id,
        "name": name,
        "aliases": [],
        "brand_website": None,
        "logo": logo,
        "locations": [{"city": city, "state": state}],
        "portals": portals,
    }


BRANDS = [
    _brand(
        "brand-general",
        "General Hospital",
        "Springfield",
        "IL",
        [{"id": "portal-general", "name": "MyGeneral", "endpoints": [_endpoint("ep-general")]}],
    ),
    _brand(
        "brand-lakeside",
        "Lakeside Clinic",
        "Madison",
        "WI",
        [
            {"id": "portal-lake-a", "name": "Lakeside MyChart", "endpoints": [_endpoint("ep-a")]},
            {
                "id": "portal-lake-b",
                "name": "Lakeside Pediatrics Portal",
                "endpoints": [_endpoint("ep-b"), _endpoint("ep-b-old", status="suspended")],
            },
        ],
    ),
    _brand(
        "brand-declined",
        "Declined Health",
        "Austin",
        "TX",
        [{"id": "portal-declined", "name": "Declined", "endpoints": [_endpoint("ep-declined")]}],
    ),
    _brand(
        "brand-slow",
        "Slow Valley Medical",
        "Boise",
        "ID",
        [{"id": "portal-slow", "name": "SlowChart", "endpoints": [_endpoint("ep-slow")]}],
    ),
    _brand(
        "brand-hostile",
        '<img src=x onerror="window.__pwned=1">',
        "Nowhere",
        "ZZ",
        [{"id": "portal-hostile", "name": "Hostile", "endpoints": [_endpoint("ep-hostile")]}],
        logo="javascript:window.__pwned=1",
    ),
    *[
        _brand(
            f"brand-filler-{n:02d}",
            f"Community Care {n:02d}",
            "Fresno",
            "CA",
            [{"id": f"portal-f{n}", "name": "Portal", "endpoints": [_endpoint(f"ep-f{n}")]}],
        )
        for n in range(1, 26)
    ],
]


class FakePlatform:
    """The bridge endpoints the widget calls, recording what it was asked."""

    def __init__(self, embedding_origin: str) -> None:
        self.embedding_origin = embedding_origin
        self.searches: list[dict[str, Any]] = []
        self.connects: list[dict[str, str]] = []
        # The result handle, as the platform keeps it: result by challenge, handed out once.
        self.results: dict[str, dict[str, object]] = {}
        self.polls: list[str] = []
        self.poll_answers: list[str] = []
        self.poll_gate: threading.Event | None = None  # set: polls wait until it is released
        self._lock = threading.Lock()

    def app(self) -> FastAPI:
        app = FastAPI()
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[self.embedding_origin],
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "accept"],
        )
        app.include_router(widget_routes.router)

        @app.get("/v1/bridge/org")
        async def org(public_id: str) -> JSONResponse:
            if public_id != PUBLIC_ID:
                return JSONResponse(
                    {
                        "success": False,
                        "error": "not_found",
                        "error_description": "no organization has this public_id",
                    },
                    status_code=404,
                )
            card = {
                "id": "org_acme",
                "name": "Acme Health",
                "logo": None,
                "privacy_policy_url": "https://acme.example/privacy",
                "api_mode": "test",
            }
            return JSONResponse({"success": True, "data": card})

        @app.post("/v1/bridge/catalog/search")
        async def search(request: Request, public_id: str, api_mode: str) -> JSONResponse:
            body = await request.json()
            with self._lock:
                self.searches.append({"public_id": public_id, "api_mode": api_mode, **body})
            query = str(body.get("query") or "").lower()
            city = str(body.get("city") or "").lower()
            matches = [
                b
                for b in BRANDS
                if query in b["name"].lower()
                and (not city or any(city == loc["city"].lower() for loc in b["locations"]))
            ]
            # Elasticsearch's shape, as the platform answers (docs/api.md): every match scores
            # 1.0 here, so the sort key is [1.0, name, id] and searchAfter the last one shown.
            keys = [[1.0, b["name"].lower(), b["id"]] for b in matches]
            after = body.get("searchAfter")
            offset = keys.index(after) + 1 if after else 0
            limit = int(body.get("limit") or 20)
            hits = [
                {"_id": b["id"], "_score": 1.0, "sort": key, "_source": {**b, "hidden": False}}
                for b, key in zip(matches, keys, strict=True)
            ][offset : offset + limit]
            data = {"hits": {"total": {"value": len(matches), "relation": "eq"}, "hits": hits}}
            return JSONResponse({"success": True, "data": data})

        @app.get("/v1/bridge/catalog")
        async def catalog(brand_id: str) -> JSONResponse:
            brand = next((b for b in BRANDS if b["id"] == brand_id), None)
            if brand is None:
                return JSONResponse(
                    {"success": False, "error": "not_found", "error_description": "no such brand"},
                    status_code=404,
                )
            return JSONResponse({"success": True, "data": brand})

        @app.get("/v1/bridge/connect")
        async def connect(request: Request) -> RedirectResponse:
            params = dict(request.query_params)
            with self._lock:
                self.connects.append({"path": "connect", **params})
            return RedirectResponse(f"/fake-portal?{urlencode(params)}", status_code=302)

        @app.get("/v1/bridge/reconnect")
        async def reconnect(request: Request) -> RedirectResponse:
            params = dict(request.query_params)
            with self._lock:
                self.connects.append({"path": "reconnect", **params})
            return RedirectResponse(f"/fake-portal?{urlencode(params)}", status_code=302)

        @app.post("/v1/bridge/connect/result")
        async def connect_result(request: Request) -> JSONResponse:
            handle = str((await request.json()).get("result_handle") or "")
            with self._lock:
                self.polls.append(handle)
                gate = self.poll_gate
            if gate is not None:
                await asyncio.to_thread(gate.wait, 15)
            with self._lock:
                result = self.results.pop(s256_challenge(handle), None)
                self.poll_answers.append(str(result["status"]) if result else "pending")
            data = result or {"status": "pending", "expires_in": 1200}
            return JSONResponse({"success": True, "data": data})

        @app.get("/fake-portal")
        async def portal(request: Request) -> HTMLResponse:
            # Stands in for the health system's login and consent pages; the slow one waits for
            # the patient to press a button, the others go straight back to the callback.
            callback = "/v1/bridge/callback?" + urlencode(dict(request.query_params))
            if request.query_params.get("brand_id") == "brand-slow":
                return HTMLResponse(
                    f'<!doctype html><title>SlowChart</title><a href="{callback}">Allow</a>'
                )
            return HTMLResponse(
                f"<!doctype html><title>Portal</title>"
                f'<a id="go" href="{callback}">continue</a>'
                "<script>location.replace(document.getElementById('go').href)</script>"
            )

        @app.get("/v1/bridge/callback")
        async def callback(request: Request) -> HTMLResponse:
            params = request.query_params
            if params.get("brand_id") == "brand-declined":
                result = failure_result("access_denied", "You chose not to share your records.")
            else:
                result = success_result(
                    org_connection_id=params.get("reconnect_org_connection_id")
                    or str(uuid.uuid4()),
                    connection_status="authorized",
                    platform_type="epic",
                    brand_id=params.get("brand_id"),
                    portal_id=params.get("portal_id"),
                    endpoint_id=params.get("endpoint_id"),
                    api_mode="test",
                )
            challenge = params.get("result_challenge")
            if challenge:
                with self._lock:
                    self.results[challenge] = result
            return HTMLResponse(
                render_callback_page(
                    result, self.embedding_origin, close_without_opener=bool(challenge)
                )
            )

        return app


@pytest.fixture(scope="module")
def platform(host_pages: HostPages) -> Iterator[tuple[str, FakePlatform]]:
    fake = FakePlatform(host_pages.origin)
    with serve_in_thread(fake.app()) as server:
        yield server.url, fake


@pytest.fixture
def open_widget(
    page: Page, events: EventLog, host_pages: HostPages, platform: tuple[str, FakePlatform]
) -> Callable[..., Awaitable[Page]]:
    """Load a host page with the widget (attributes on top of public-id/external-id), open it."""

    async def load(attributes: dict[str, str | None] | None = None, *, click: bool = True) -> Page:
        api_url, _ = platform
        await events.attach(page)
        await page.goto(
            host_pages.embed(
                api_url, {"public-id": PUBLIC_ID, "external-id": "user-42", **(attributes or {})}
            )
        )
        if click:
            await page.get_by_role("button", name=OPEN_BUTTON).click()
            await expect(dialog(page)).to_be_visible()
        return page

    return load


OpenWidget = Callable[..., Awaitable[Page]]


async def search(page: Page, query: str) -> None:
    field = page.get_by_label("Search for your health system")
    await field.fill(query)
    await field.press("Enter")


async def connect_brand(page: Page, brand: str) -> Page:
    """Click a brand card with a single endpoint; returns the sign-in popup."""
    async with page.expect_popup() as popup:
        await page.get_by_role("button", name=brand).click()
    return await popup.value


def dialog(page: Page) -> Locator:
    return page.locator("ehi-stitch-element dialog")


def heading(page: Page) -> Locator:
    return dialog(page).get_by_role("heading")


# ---- configuration ------------------------------------------------------------------------------


async def test_missing_public_id_is_a_config_error(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget({"public-id": None}, click=False)

    event = await events.wait_for("widget.config_error")
    assert event["data"]["error"] == "missing_public_id"
    assert "public-id" in event["data"]["error_description"]

    await page.get_by_role("button", name=OPEN_BUTTON).click()
    await expect(heading(page)).to_have_text("This connection can\u2019t start")
    await screenshot(page, "config-error")


async def test_unknown_organization_is_a_config_error(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget({"public-id": "public_test_nobody"})

    event = await events.wait_for("widget.config_error")
    assert event["data"] == {
        "error": "not_found",
        "error_description": "no organization has this public_id",
    }
    await expect(dialog(page)).to_contain_text("no organization has this public_id")
    await screenshot(page, "org-not-found")


# ---- search -------------------------------------------------------------------------------------


async def test_search_shows_brand_cards_and_reports_the_query(
    open_widget: OpenWidget,
    events: EventLog,
    platform: tuple[str, FakePlatform],
    screenshot: Screenshot,
) -> None:
    page = await open_widget()
    await expect(dialog(page)).to_contain_text("Acme Health")
    await expect(dialog(page)).to_contain_text("Test mode")
    await screenshot(page, "opened")

    await search(page, "lakeside")

    card = page.get_by_role("button", name="Lakeside Clinic")
    await expect(card).to_contain_text("Madison, WI")
    await expect(page.locator("ehi-stitch-element button.brand")).to_have_count(1)
    await expect(page.get_by_role("status")).to_have_text("1 health system found.")
    assert (await events.wait_for("search.query"))["data"] == {"query": "lakeside"}
    assert (await events.all())[-1]["api_mode"] == "test"
    _, fake = platform
    assert fake.searches[-1] == {
        "public_id": PUBLIC_ID,
        "api_mode": "test",
        "query": "lakeside",
        "searchAfter": None,
        "limit": 20,
    }
    await screenshot(page, "results")


async def test_more_results_are_fetched_with_search_after(
    open_widget: OpenWidget, platform: tuple[str, FakePlatform], screenshot: Screenshot
) -> None:
    page = await open_widget()
    await search(page, "community care")
    cards = page.locator("ehi-stitch-element button.brand")
    await expect(cards).to_have_count(20)
    await expect(page.get_by_role("status")).to_have_text("25 health systems found.")

    await page.get_by_role("button", name="Show more results").click()

    await expect(cards).to_have_count(25)
    await expect(page.get_by_role("button", name="Show more results")).to_be_hidden()
    _, fake = platform
    assert fake.searches[-1]["searchAfter"] == [1.0, "community care 20", "brand-filler-20"]
    await screenshot(page, "all-results")


async def test_search_can_be_narrowed_by_city(
    open_widget: OpenWidget, events: EventLog, platform: tuple[str, FakePlatform]
) -> None:
    page = await open_widget()
    await dialog(page).get_by_text("Narrow by location").click()
    await page.get_by_label("City").fill("Madison")
    await page.get_by_label("City").press("Enter")

    cards = page.locator("ehi-stitch-element button.brand")
    await expect(cards).to_have_count(1)
    await expect(cards).to_contain_text("Lakeside Clinic")
    assert (await events.wait_for("search.query"))["data"] == {"query": "", "city": "Madison"}
    _, fake = platform
    assert fake.searches[-1]["city"] == "Madison"
    assert "state" not in fake.searches[-1]


async def test_catalog_text_is_shown_as_text_never_as_markup(
    open_widget: OpenWidget, screenshot: Screenshot
) -> None:
    page = await open_widget()
    await search(page, "<img")

    card = page.locator("ehi-stitch-element button.brand")
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text('<img src=x onerror="window.__pwned=1">')
    assert await card.locator("img").count() == 0  # the javascript: logo was not used either
    assert await page.evaluate("window.__pwned") is None
    await screenshot(page, "hostile-brand")


# ---- connecting ---------------------------------------------------------------------------------


async def test_connecting_a_health_system_reports_success_then_complete(
    open_widget: OpenWidget,
    events: EventLog,
    platform: tuple[str, FakePlatform],
    screenshot: Screenshot,
) -> None:
    page = await open_widget()
    await search(page, "general")

    popup = await connect_brand(page, "General Hospital")

    pending = await events.wait_for("patient.connection_pending")
    assert pending["data"] == {
        "public_id": PUBLIC_ID,
        "brand_id": "brand-general",
        "portal_id": "portal-general",
        "endpoint_id": "ep-general",
        "external_id": "user-42",
        "external_state": None,
        "org_connection_id": None,
    }
    success = (await events.wait_for("patient.connection_success"))["data"]
    assert uuid.UUID(success["org_connection_id"]).version == 4
    assert success == {
        "org_connection_id": success["org_connection_id"],
        "connection_status": "authorized",
        "platform_type": "epic",
        "brand_id": "brand-general",
        "portal_id": "portal-general",
        "endpoint_id": "ep-general",
        "scope": None,
        "consent_expires_at": None,
        "external_id": "user-42",
        "external_state": None,
    }
    if not popup.is_closed():  # the callback page closes its own window
        await popup.wait_for_event("close")
    await expect(heading(page)).to_have_text("Connected to General Hospital")
    _, fake = platform
    assert without_challenge(fake.connects[-1]) == {
        "path": "connect",
        "public_id": PUBLIC_ID,
        "brand_id": "brand-general",
        "portal_id": "portal-general",
        "endpoint_id": "ep-general",
        "external_id": "user-42",
    }
    await screenshot(page, "connected")

    await page.get_by_role("button", name="Done").click()

    await expect(dialog(page)).to_be_hidden()
    complete = await events.wait_for("widget.complete")
    # Fasten's connected-account shape: the success fields plus brand, portal and endpoint.
    assert complete["data"] == [
        {
            **success,
            "brand": {"id": "brand-general", "name": "General Hospital", "logo_uri": None},
            "portal": {"id": "portal-general", "name": "MyGeneral"},
            "endpoint": {"id": "ep-general", "platform_type": "epic"},
        }
    ]
    assert (await events.types())[-2:] == ["widget.complete", "widget.close"]
    await screenshot(page, "closed")


async def test_two_connections_in_one_session_both_complete(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget()
    await search(page, "general")
    await connect_brand(page, "General Hospital")
    first = (await events.wait_for("patient.connection_success"))["data"]

    await page.get_by_role("button", name="Connect another health system").click()
    await search(page, "lakeside")
    await page.get_by_role("button", name="Lakeside Clinic").click()
    # Two portals with an active endpoint each; the suspended endpoint is not offered.
    await expect(page.locator("ehi-stitch-element button.option")).to_have_count(2)
    await screenshot(page, "choose-portal")
    async with page.expect_popup():
        await page.get_by_role("button", name="Lakeside Pediatrics Portal").click()
    second = (await events.wait_for("patient.connection_success", count=2))["data"]
    assert second["portal_id"] == "portal-lake-b"
    assert second["endpoint_id"] == "ep-b"
    await expect(dialog(page).locator("ul.connected li")).to_have_text(
        ["General Hospital", "Lakeside Clinic"]
    )
    await screenshot(page, "two-connected")

    await page.get_by_role("button", name="Done").click()

    complete = (await events.wait_for("widget.complete"))["data"]
    assert [account["org_connection_id"] for account in complete] == [
        first["org_connection_id"],
        second["org_connection_id"],
    ]
    assert first["org_connection_id"] != second["org_connection_id"]


async def test_a_declined_sign_in_reports_failure(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget()
    await search(page, "declined")

    await connect_brand(page, "Declined Health")

    failed = (await events.wait_for("patient.connection_failed"))["data"]
    assert failed == {
        "public_id": PUBLIC_ID,
        "brand_id": "brand-declined",
        "portal_id": "portal-declined",
        "endpoint_id": "ep-declined",
        "external_id": "user-42",
        "external_state": None,
        "org_connection_id": None,
        "error": "access_denied",
        "error_description": "You chose not to share your records.",
    }
    await expect(page.get_by_role("alert")).to_have_text("You chose not to share your records.")
    await screenshot(page, "failed")

    await page.get_by_role("button", name="Close").click()

    await events.wait_for("widget.close")
    assert "widget.complete" not in await events.types()
    assert "patient.connection_success" not in await events.types()


async def test_a_blocked_popup_explains_and_can_retry(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget()
    await search(page, "general")
    await page.evaluate("window.__realOpen = window.open; window.open = () => null")

    await page.get_by_role("button", name="General Hospital").click()

    await expect(page.get_by_role("alert")).to_have_text(POPUP_BLOCKED)
    assert "patient.connection_pending" not in await events.types()
    await screenshot(page, "blocked")

    await page.evaluate("window.open = window.__realOpen")
    async with page.expect_popup():
        await page.get_by_role("button", name="Try again").click()
    await events.wait_for("patient.connection_pending")
    await events.wait_for("patient.connection_success")


async def test_only_the_popup_on_the_platform_origin_can_report_a_result(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget()
    await search(page, "slow valley")
    popup = await connect_brand(page, "Slow Valley Medical")
    await events.wait_for("patient.connection_pending")
    await expect(heading(page)).to_have_text("Sign in at Slow Valley Medical")
    await screenshot(page, "pending")

    # A forged result from the host page itself (wrong source and origin) is ignored.
    await page.evaluate(
        """window.postMessage({source: 'ehiconnect', type: 'connection_result',
             payload: {status: 'success', org_connection_id: 'forged'}}, '*')"""
    )
    # Messages arrive in order: once a later marker is seen, the forgery has been handled.
    await page.evaluate(
        """() => new Promise((resolve) => {
             window.addEventListener('message', (e) => { if (e.data === 'marker') resolve(); });
             window.postMessage('marker', '*');
           })"""
    )
    assert "patient.connection_success" not in await events.types()

    await popup.get_by_role("link", name="Allow").click()

    success = (await events.wait_for("patient.connection_success"))["data"]
    assert success["org_connection_id"] != "forged"
    assert success["brand_id"] == "brand-slow"


async def test_a_result_both_paths_bring_is_reported_once(
    open_widget: OpenWidget,
    events: EventLog,
    platform: tuple[str, FakePlatform],
    screenshot: Screenshot,
) -> None:
    _, fake = platform
    gate = threading.Event()
    fake.poll_gate = gate  # the widget's first poll waits at the platform
    try:
        page = await open_widget()
        await search(page, "slow valley")
        polls_before = len(fake.polls)
        popup = await connect_brand(page, "Slow Valley Medical")
        await events.wait_for("patient.connection_pending")
        await _wait_until(lambda: len(fake.polls) > polls_before)

        # The popup posts its result while that poll is still on its way.
        await popup.get_by_role("link", name="Allow").click()
        success = (await events.wait_for("patient.connection_success"))["data"]
        answers_before = len(fake.poll_answers)
        gate.set()
        await _wait_until(lambda: len(fake.poll_answers) > answers_before)
    finally:
        fake.poll_gate = None
        gate.set()

    # The poll came back with the same result too, and was dropped; polling has stopped.
    assert fake.poll_answers[answers_before] == "success"
    polls_after = len(fake.polls)
    await page.wait_for_timeout(2500)
    assert len(fake.polls) == polls_after
    assert len(await events.of_type("patient.connection_success")) == 1
    await expect(heading(page)).to_have_text("Connected to Slow Valley Medical")
    await screenshot(page, "connected-once")
    await page.get_by_role("button", name="Done").click()
    [account] = (await events.wait_for("widget.complete"))["data"]
    assert {key: account[key] for key in success} == success

    # The popup's URL carried only the challenge; the handle itself went only to the platform.
    handle = fake.polls[polls_before]
    challenge = fake.connects[-1]["result_challenge"]
    assert s256_challenge(handle) == challenge
    assert handle not in str(fake.connects)


async def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_each_sign_in_attempt_has_its_own_result_challenge(
    open_widget: OpenWidget, events: EventLog, platform: tuple[str, FakePlatform]
) -> None:
    _, fake = platform
    page = await open_widget()
    await search(page, "general")
    await connect_brand(page, "General Hospital")
    await events.wait_for("patient.connection_success")
    await page.get_by_role("button", name="Connect another health system").click()
    await search(page, "general")
    await connect_brand(page, "General Hospital")
    await events.wait_for("patient.connection_success", count=2)

    first, second = fake.connects[-2:]
    assert without_challenge(first) == without_challenge(second)
    assert first["result_challenge"] != second["result_challenge"]


async def test_a_preselected_brand_and_portal_skip_the_search(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget({"brand-id": "brand-lakeside", "portal-id": "portal-lake-b"})

    await expect(heading(page)).to_have_text("Sign in to Lakeside Clinic")
    options = page.locator("ehi-stitch-element button.option")
    await expect(options).to_have_count(1)
    await screenshot(page, "preselected")
    async with page.expect_popup():
        await options.click()

    success = (await events.wait_for("patient.connection_success"))["data"]
    assert (success["brand_id"], success["portal_id"], success["endpoint_id"]) == (
        "brand-lakeside",
        "portal-lake-b",
        "ep-b",
    )
    assert "search.query" not in await events.types()


async def test_closing_the_sign_in_window_early_offers_a_retry(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget()
    await search(page, "slow valley")
    popup = await connect_brand(page, "Slow Valley Medical")
    await events.wait_for("patient.connection_pending")

    await popup.close()

    await expect(heading(page)).to_have_text("Sign-in not finished")
    await screenshot(page, "closed-early")
    async with page.expect_popup() as second:
        await page.get_by_role("button", name="Try again").click()
    await events.wait_for("patient.connection_pending", count=2)

    # Leaving the widget mid-sign-in closes the sign-in window too.
    second_popup = await second.value
    async with second_popup.expect_event("close"):
        await page.get_by_role("button", name="Close").click()

    await events.wait_for("widget.close")
    unexpected = {"patient.connection_success", "patient.connection_failed", "widget.complete"}
    assert not unexpected & set(await events.types())


async def test_reconnect_signs_in_again_to_the_same_connection(
    open_widget: OpenWidget,
    events: EventLog,
    platform: tuple[str, FakePlatform],
    screenshot: Screenshot,
) -> None:
    connection_id = str(uuid.uuid4())
    page = await open_widget({"reconnect-org-connection-id": connection_id})
    await expect(heading(page)).to_have_text("Reconnect your health records")
    await screenshot(page, "reconnect")

    async with page.expect_popup():
        await page.get_by_role("button", name="Sign in again").click()

    success = (await events.wait_for("patient.connection_success"))["data"]
    assert success["org_connection_id"] == connection_id
    _, fake = platform
    assert without_challenge(fake.connects[-1]) == {
        "path": "reconnect",
        "public_id": PUBLIC_ID,
        "reconnect_org_connection_id": connection_id,
    }


# ---- keyboard, filters, layout ------------------------------------------------------------------


async def test_keyboard_only_use_and_escape_closes(
    open_widget: OpenWidget, events: EventLog, screenshot: Screenshot
) -> None:
    page = await open_widget(click=False)
    active = "document.activeElement?.shadowRoot?.activeElement"

    await page.keyboard.press("Tab")
    assert await page.evaluate(f"{active}?.classList.contains('trigger')")
    await page.keyboard.press("Enter")
    await expect(dialog(page)).to_be_visible()
    await expect(page.locator("ehi-stitch-element button.brand").first).to_be_visible()
    assert await page.evaluate(f"{active}?.id") == "query"
    await screenshot(page, "focus-in-search")

    # Focus never leaves the dialog, forwards or backwards.
    inside = f"!!{active} && !!{active}.closest('dialog')"
    for _ in range(30):
        await page.keyboard.press("Tab")
        assert await page.evaluate(inside)
    for _ in range(5):
        await page.keyboard.press("Shift+Tab")
        assert await page.evaluate(inside)

    await page.keyboard.press("Escape")

    await expect(dialog(page)).to_be_hidden()
    assert (await events.wait_for("widget.close"))["data"] == {}
    assert await page.evaluate(f"{active}?.classList.contains('trigger')")


async def test_static_backdrop_ignores_escape_and_backdrop_clicks(
    open_widget: OpenWidget, events: EventLog
) -> None:
    page = await open_widget({"static-backdrop": "true"})

    await page.keyboard.press("Escape")
    await page.keyboard.press("Escape")
    await page.mouse.click(5, 5)

    await expect(dialog(page)).to_be_visible()
    assert "widget.close" not in await events.types()
    await page.get_by_role("button", name="Close").click()
    await events.wait_for("widget.close")


async def test_event_types_filters_what_is_emitted(
    open_widget: OpenWidget, events: EventLog
) -> None:
    page = await open_widget({"event-types": "widget.close"})
    await search(page, "general")
    await expect(page.get_by_role("button", name="General Hospital")).to_be_visible()

    await page.get_by_role("button", name="Close").click()

    await events.wait_for("widget.close")
    assert await events.types() == ["widget.close"]


async def test_splash_comes_first_when_asked(
    open_widget: OpenWidget, screenshot: Screenshot
) -> None:
    page = await open_widget({"show-splash": "true", "search-query": "lakeside"})
    await expect(heading(page)).to_have_text("Connect your health records")
    await screenshot(page, "splash")

    await page.get_by_role("button", name="Continue").click()

    await expect(page.get_by_label("Search for your health system")).to_have_value("lakeside")
    await expect(page.get_by_role("button", name="Lakeside Clinic")).to_be_visible()


async def test_readable_on_a_phone(
    phone_context: BrowserContext,
    events: EventLog,
    host_pages: HostPages,
    platform: tuple[str, FakePlatform],
    screenshot: Screenshot,
) -> None:
    page = await phone_context.new_page()
    await events.attach(page)
    await page.goto(host_pages.embed(platform[0], {"public-id": PUBLIC_ID}))
    await screenshot(page, "phone-host")
    await page.get_by_role("button", name=OPEN_BUTTON).click()
    await search(page, "lakeside")
    card = page.get_by_role("button", name="Lakeside Clinic")
    await expect(card).to_be_visible()
    await screenshot(page, "phone-results")

    box = await dialog(page).bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["y"] >= 0
    assert box["x"] + box["width"] <= 375
    assert box["y"] + box["height"] <= 667
    card_box = await card.bounding_box()
    assert card_box is not None
    assert card_box["x"] + card_box["width"] <= 375
    # Nothing inside the dialog scrolls sideways.
    assert await page.evaluate(
        """() => { const view = document.querySelector('ehi-stitch-element').shadowRoot
                     .querySelector('.view');
                   return view.scrollWidth <= view.clientWidth; }"""
    )
    await card.click()
    await expect(page.locator("ehi-stitch-element button.option")).to_have_count(2)
    await screenshot(page, "phone-portals")
