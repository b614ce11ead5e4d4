"""Console test helpers: accounts, a cookie-keeping client that signs in, and data to look at."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from ehiconnect.consolekit import accounts
from ehiconnect.consolekit.models import ROLE_CUSTOMER, ROLE_OPERATOR
from ehiconnect.runtime import Runtime
from ehiconnect.settings import WebhookSettings
from ehiconnect.webhooks.delivery import Deliverer

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LOGIN = re.compile(r'name="login_token" value="([^"]+)"')


async def add_account(
    runtime: Runtime, email: str, *, org_id: str | None = None, password: str = PASSWORD
) -> None:
    async with runtime.database.transaction() as session:
        await accounts.add_user(
            session,
            runtime.clock,
            realm="platform",
            email=email,
            password=password,
            role=ROLE_CUSTOMER if org_id else ROLE_OPERATOR,
            org_id=org_id,
        )


@dataclass
class ConsoleClient:
    """A browser-like client of /console: keeps cookies, never follows redirects by itself."""

    http: httpx.Client

    def login_form(self) -> str:
        page = self.http.get("/console/login")
        assert page.status_code == 200, page.text
        match = _LOGIN.search(page.text)
        assert match, page.text
        return match.group(1)

    def try_login(self, email: str, password: str) -> httpx.Response:
        token = self.login_form()
        return self.http.post(
            "/console/login",
            data={"email": email, "password": password, "login_token": token, "next": ""},
        )

    def login(self, email: str, password: str = PASSWORD) -> None:
        response = self.try_login(email, password)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/console/"

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path, headers={"Accept": "text/html"})

    def csrf(self, path: str = "/console/") -> str:
        page = self.get(path)
        assert page.status_code == 200, page.text
        match = _CSRF.search(page.text)
        assert match, page.text
        return match.group(1)

    def post(
        self, path: str, data: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Response:
        return self.http.post(path, data=data or {}, headers={"Accept": "text/html"})

    def switch_mode(self, mode: str) -> None:
        response = self.post("/console/mode", {"mode": mode, "csrf_token": self.csrf()})
        assert response.status_code == 303, response.text


def console_client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=20, follow_redirects=False)


async def deliver_once(runtime: Runtime) -> None:
    """One pass of the webhook sender over what is due now."""
    sender = Deliverer(
        runtime.database, runtime.clock, WebhookSettings(timeout_seconds=5), runtime.cipher
    )
    await sender.run_until_idle()
