"""The platform and the sandbox health systems, both over real HTTP on loopback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from ehiconnect.api.app import create_app
from ehiconnect.clock import FrozenClock
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.app import build_sandbox_app
from ehiconnect.sandbox.catalog_sync import sandbox_catalog_data
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer, free_port, serve_in_thread
from tests.integration.conftest import make_org
from tests.support.portal import sign_in

APP_ORIGIN = "http://localhost:3000"
APP_REDIRECT = "http://localhost:3000/connected"


@pytest.fixture
def sandbox_app() -> Starlette:
    return build_sandbox_app()


@pytest.fixture
def sandbox(sandbox_app: Starlette) -> Iterator[ThreadedServer]:
    with serve_in_thread(sandbox_app) as server:
        yield server


@pytest.fixture
def sandbox_state(sandbox_app: Starlette, sandbox: ThreadedServer) -> SandboxState:
    state: SandboxState = sandbox_app.state.sandbox
    return state


@pytest.fixture
def platform_clock() -> FrozenClock:
    import datetime as dt

    return FrozenClock(dt.datetime.now(dt.UTC))


@pytest.fixture
def settings(tmp_path: Path, database_url: str, sandbox: ThreadedServer) -> Settings:
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    settings.api.port = port
    settings.sandbox.base_url = sandbox.url
    return settings


@pytest.fixture
def api(settings: Settings, platform_clock: FrozenClock) -> Iterator[ThreadedServer]:
    app = create_app(settings, clock=platform_clock)
    with serve_in_thread(app, port=settings.api.port) as server:
        yield server


@pytest.fixture
def browser(api: ThreadedServer) -> Iterator[httpx.Client]:
    """A cookie-keeping client that does not follow redirects by itself, like a careful browser."""
    with httpx.Client(timeout=20, follow_redirects=False) as client:
        yield client


@pytest.fixture
async def org(runtime: Runtime, api: ThreadedServer) -> CreatedOrg:
    return await make_org(
        runtime, "Acme Health", redirect_uris=[APP_REDIRECT], origins=[APP_ORIGIN]
    )


def endpoint_ids(sandbox_url: str) -> dict[str, str]:
    """Sandbox slug → catalog endpoint id."""
    data = sandbox_catalog_data(sandbox_url)
    return {e.url.rstrip("/").split("/")[-2]: e.id for e in data.endpoints}


@dataclass
class Platform:
    api: ThreadedServer
    sandbox: ThreadedServer
    org: CreatedOrg
    browser: httpx.Client

    def connect_url(self, slug: str, **params: str) -> str:
        query = {
            "public_id": self.org.keys["test"].public_id,
            "endpoint_id": endpoint_ids(self.sandbox.url)[slug],
            **params,
        }
        return str(httpx.URL(f"{self.api.url}/v1/bridge/connect", params=query))

    def start(self, url: str, referer: str | None = APP_ORIGIN + "/") -> httpx.Response:
        headers = {"Referer": referer} if referer else {}
        return self.browser.get(url, headers=headers)

    def authorize(self, slug: str, **params: str) -> str:
        response = self.start(self.connect_url(slug, **params))
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(self.sandbox.url)
        return location

    def callback(
        self,
        slug: str,
        username: str,
        *,
        decision: str = "allow",
        keep_scopes: set[str] | None = None,
        keep_types: set[str] | None = None,
        **params: str,
    ) -> str:
        return sign_in(
            self.browser,
            self.authorize(slug, **params),
            username=username,
            password=f"{username}-sandbox",
            decision=decision,
            keep_scopes=keep_scopes,
            keep_types=keep_types,
        )

    def finish(self, callback_url: str) -> httpx.Response:
        assert callback_url.startswith(f"{self.api.url}/v1/bridge/callback"), callback_url
        return self.browser.get(callback_url)

    def connect(self, slug: str, username: str, **kwargs: Any) -> dict[str, Any]:
        page = self.finish(self.callback(slug, username, **kwargs))
        return page_result(page)

    def auth(self, mode: str = "test") -> tuple[str, str]:
        pair = self.org.keys["test" if mode == "test" else "live"]
        return pair.public_id, pair.private_key


@pytest.fixture
def platform(
    api: ThreadedServer, sandbox: ThreadedServer, org: CreatedOrg, browser: httpx.Client
) -> Platform:
    return Platform(api=api, sandbox=sandbox, org=org, browser=browser)


_RESULT = re.compile(r'<script type="application/json" id="ehiconnect-result">(.*?)</script>', re.S)


def page_result(page: httpx.Response) -> dict[str, Any]:
    """The payload the callback page posts to the widget."""
    match = _RESULT.search(page.text)
    assert match, page.text[:500]
    message = json.loads(match.group(1))
    payload: dict[str, Any] = message["envelope"]["payload"]
    payload["_target_origin"] = message["targetOrigin"]
    payload["_status_code"] = page.status_code
    return payload


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
