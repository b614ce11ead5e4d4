"""Browser-test fixtures: headless Debian Chromium driven by Playwright, host pages, widget events.

Chromium comes from the OS (`apt-get install chromium`), never from `playwright install`; without
it (or without the `playwright` package) every test here is skipped with the reason. A test module
starts with `pytest.importorskip("playwright.async_api", reason=PLAYWRIGHT_MISSING)` before
importing from Playwright. Every test in this folder is marked `e2e`.

The fixtures use Playwright's async API, so browser tests are `async def` and share the test's
event loop with the project's async fixtures (the runtime, `make_org`, ...). Playwright's sync API
would not mix: it keeps its own loop running on the main thread. Each test gets its own browser
(about 0.8 s to start), so nothing leaks between tests.

What a widget test usually needs:

    async def test_x(page, host_pages, events, screenshot, api):
        await events.attach(page)                          # before the first navigation
        await page.goto(host_pages.embed(api.url, {"public-id": public_id}))
        await page.get_by_role("button", name="Connect your health records").click()
        await events.wait_for("search.query")
        await screenshot(page, "search")

`host_pages.origin` is the embedding page's origin, to register for the organization (loopback
origins are accepted in test mode anyway).
"""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ehiconnect.testing.servers import ThreadedServer, serve_in_thread

if TYPE_CHECKING:
    # Imported for real inside the fixtures, so a checkout without Playwright skips these tests
    # (test modules call pytest.importorskip) instead of failing to collect them.
    from playwright.async_api import Browser, BrowserContext, Page

PLAYWRIGHT_MISSING = "the playwright package is not installed (pip install playwright)"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1024, "height": 768}
PHONE = {"width": 375, "height": 667}

Screenshot = Callable[["Page", str], Awaitable[Path]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


# ---- browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    return path


@pytest.fixture
async def browser(chromium_executable: str) -> AsyncIterator[Browser]:
    async_api = pytest.importorskip("playwright.async_api", reason=PLAYWRIGHT_MISSING)
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_context(browser: Browser, viewport: Mapping[str, int] = DESKTOP) -> BrowserContext:
    context = await browser.new_context(
        viewport={"width": viewport["width"], "height": viewport["height"]}, locale="en-US"
    )
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh desktop-sized context (1024 x 768)."""
    opened = await new_context(browser)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def phone_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh phone-sized context (375 x 667)."""
    opened = await new_context(browser, PHONE)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


# ---- host pages ---------------------------------------------------------------------------------


class HostPages:
    """A customer's web page, served from its own loopback origin, embedding the widget.

    `embed(api_url, attributes)` registers a page that loads the widget script from the platform
    at `api_url` and returns the page's URL. Attribute values are HTML-escaped; None omits one.
    """

    def __init__(self) -> None:
        self._pages: dict[str, str] = {}
        self._ids = itertools.count(1)
        self.server: ThreadedServer | None = None

    @property
    def origin(self) -> str:
        assert self.server is not None, "the host page server is not running"
        return self.server.url

    def add(self, page_html: str) -> str:
        name = f"p{next(self._ids)}"
        self._pages[name] = page_html
        return f"{self.origin}/pages/{name}"

    def embed(
        self, api_url: str, attributes: Mapping[str, str | None], *, body_extra: str = ""
    ) -> str:
        attrs = "".join(
            f' {name}="{html.escape(value)}"'
            for name, value in attributes.items()
            if value is not None
        )
        script = html.escape(f"{api_url.rstrip('/')}/widget/ehi-stitch-element.js")
        return self.add(
            f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Host app</title>
<script src="{script}"></script>
</head>
<body>
<main>
<h1>Your health app</h1>
<p>Share your records with us to get started.</p>
<ehi-stitch-element{attrs}></ehi-stitch-element>
{body_extra}
</main>
</body>
</html>
"""
        )

    def app(self) -> Starlette:
        async def serve(request: Request) -> Response:
            page_html = self._pages.get(request.path_params["name"])
            if page_html is None:
                return Response("no such page", status_code=404)
            return HTMLResponse(page_html)

        return Starlette(routes=[Route("/pages/{name}", serve)])


@pytest.fixture(scope="session")
def host_pages() -> Iterator[HostPages]:
    pages = HostPages()
    with serve_in_thread(pages.app()) as server:
        pages.server = server
        yield pages


# ---- widget events ------------------------------------------------------------------------------

# Runs before any page script: records the raw `detail.data` of every eventBus event, capturing at
# the window so a host listener that stops propagation cannot hide one.
_RECORDER = """
window.__ehiEvents = [];
window.addEventListener('eventBus', (event) => {
  window.__ehiEvents.push(event.detail ? event.detail.data : undefined);
}, true);
"""


class EventLog:
    """The widget's eventBus events on one page, parsed: [{"api_mode", "event_type", "data"}]."""

    def __init__(self) -> None:
        self._page: Page | None = None

    async def attach(self, page: Page) -> EventLog:
        """Start recording on `page`; call before navigating it."""
        await page.add_init_script(_RECORDER)
        self._page = page
        return self

    @property
    def page(self) -> Page:
        assert self._page is not None, "call `await events.attach(page)` before navigating"
        return self._page

    async def all(self) -> list[dict[str, Any]]:
        raw: list[Any] = await self.page.evaluate("window.__ehiEvents || []")
        # The compat contract: detail.data is a JSON *string*.
        assert all(isinstance(item, str) for item in raw), raw
        return [json.loads(item) for item in raw]

    async def types(self) -> list[str]:
        return [str(event["event_type"]) for event in await self.all()]

    async def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in await self.all() if event["event_type"] == event_type]

    async def wait_for(
        self, event_type: str, count: int = 1, timeout: float = 10_000
    ) -> dict[str, Any]:
        """The `count`-th event of this type, waiting for it to arrive."""
        await self.page.wait_for_function(
            """([type, count]) => (window.__ehiEvents || []).filter((raw) => {
                 try { return JSON.parse(raw).event_type === type; } catch (e) { return false; }
               }).length >= count""",
            arg=[event_type, count],
            timeout=timeout,
        )
        return (await self.of_type(event_type))[count - 1]


@pytest.fixture
def events() -> EventLog:
    return EventLog()


# ---- screenshots --------------------------------------------------------------------------------


@pytest.fixture
def screenshot_prefix() -> str:
    """Put in front of every screenshot's file name; a module overrides it to group its files."""
    return ""


@pytest.fixture
def screenshot(
    request: pytest.FixtureRequest, artifacts_dir: Path, screenshot_prefix: str
) -> Screenshot:
    """`await screenshot(page, step)` saves test-artifacts/e2e/<prefix><test>-<nn>-<step>.png."""
    folder = artifacts_dir / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    counter = itertools.count(1)

    async def take(page: Page, step: str) -> Path:
        path = folder / f"{screenshot_prefix}{test_name}-{next(counter):02d}-{step}.png"
        await page.screenshot(path=str(path))
        return path

    return take
