"""Sign in and consent at a sandbox portal the way a browser would, for tests and demos.

`PatientBrowser` reads the HTML forms the sandbox serves (sign-in, then consent), fills them and
posts them, and stops at the redirect back to the client's `redirect_uri`, returning that URL
(with `code` and `state`, or `error`). It knows nothing about the sandbox's internals, so it
exercises the same pages a patient sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

import httpx


class PortalError(Exception):
    """The portal answered with something other than the expected page or redirect."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(f"{message} (HTTP {response.status_code} from {response.url})")
        self.response = response


@dataclass
class HtmlForm:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    """Successful controls: hidden/text/password inputs and checked checkboxes."""
    checkboxes: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)
    text_inputs: list[str] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(HtmlForm(a.get("action", ""), a.get("method", "get").lower()))
            return
        if not self.forms or "name" not in a:
            return
        form = self.forms[-1]
        kind = a.get("type", "text").lower()
        if tag == "button" or kind == "submit":
            form.buttons.append((a["name"], a.get("value", "")))
        elif kind == "checkbox":
            form.checkboxes.append((a["name"], a.get("value", "on")))
            if "checked" in a:
                form.fields.append((a["name"], a.get("value", "on")))
        elif tag == "input":
            form.fields.append((a["name"], a.get("value", "")))
            if kind in ("text", "password", "email"):
                form.text_inputs.append(a["name"])


def parse_forms(html: str) -> list[HtmlForm]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class PatientBrowser:
    """A patient's browser session at the sandbox, on top of an `httpx.Client`."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def open_login(self, authorize_url: str) -> httpx.Response:
        """GET the authorize URL; the sign-in page, or a redirect/error the server chose."""
        return self.client.get(authorize_url, follow_redirects=False)

    def sign_in(self, login_page: httpx.Response, username: str, password: str) -> httpx.Response:
        form = _only_form(login_page)
        values = dict(form.fields)
        values.update({"username": username, "password": password})
        data = [(k, v) for k, v in values.items()] + [form.buttons[0]]
        return self._submit(login_page, form, data)

    def consent(
        self, consent_page: httpx.Response, *, allow: bool = True, untick: Iterable[str] = ()
    ) -> httpx.Response:
        """Click Allow or Deny on the consent page.

        `untick` clears checkboxes by value: a scope (`patient/Observation.rs`,
        `offline_access`) or, where a wildcard was asked for, a resource type (`Observation`).
        """
        form = _only_form(consent_page)
        dropped = {(k, v) for k, v in form.checkboxes if v in set(untick)}
        data = [item for item in form.fields if item not in dropped]
        decision = "allow" if allow else "deny"
        button = next((b for b in form.buttons if b[1] == decision), None)
        if button is None:
            raise PortalError(f"consent page has no {decision!r} button", consent_page)
        return self._submit(consent_page, form, [*data, button])

    def authorize(
        self,
        authorize_url: str,
        username: str,
        password: str,
        *,
        allow: bool = True,
        untick: Iterable[str] = (),
    ) -> str:
        """The whole patient side; returns the redirect URL back to the client."""
        page = self.open_login(authorize_url)
        if page.is_redirect:
            return page.headers["location"]
        if page.status_code != 200:
            raise PortalError("authorize did not show a sign-in page", page)
        consent_page = self.sign_in(page, username, password)
        if consent_page.status_code != 200:
            raise PortalError("sign-in failed", consent_page)
        done = self.consent(consent_page, allow=allow, untick=untick)
        if not done.is_redirect:
            raise PortalError("consent did not redirect back to the client", done)
        return done.headers["location"]

    def _submit(
        self, page: httpx.Response, form: HtmlForm, data: list[tuple[str, str]]
    ) -> httpx.Response:
        url = urljoin(str(page.url), form.action)
        return self.client.post(
            url,
            content=urlencode(data).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )


def _only_form(page: httpx.Response) -> HtmlForm:
    forms = parse_forms(page.text)
    if len(forms) != 1:
        raise PortalError(f"expected one form on the page, found {len(forms)}", page)
    return forms[0]
