"""Drive a sandbox patient portal the way a browser would: follow redirects, fill in forms."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    checkboxes: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get")))
        elif self.forms and tag == "input":
            kind = a.get("type", "text")
            if kind == "checkbox":
                self.forms[-1].checkboxes.append((a.get("name", ""), a.get("value", "")))
            elif kind == "hidden":
                self.forms[-1].fields.append((a.get("name", ""), a.get("value", "")))
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def _form_data(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in pairs:
        data.setdefault(name, []).append(value)
    return data


def forms_of(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def follow(client: httpx.Client, response: httpx.Response, stop_at: str) -> httpx.Response:
    """Follow redirects until one leads to a URL starting with `stop_at` (not fetched)."""
    while response.is_redirect:
        target = urljoin(str(response.url), response.headers["location"])
        if target.startswith(stop_at):
            return response
        response = client.get(target)
    return response


def sign_in(
    client: httpx.Client,
    authorize_url: str,
    *,
    username: str,
    password: str,
    decision: str = "allow",
    keep_scopes: set[str] | None = None,
    keep_types: set[str] | None = None,
) -> str:
    """Log in and answer the consent page; the URL the portal redirects back to."""
    page = client.get(authorize_url)
    page = follow(client, page, stop_at="\0")
    [login] = [f for f in forms_of(page.text) if any(b == ("action", "login") for b in f.buttons)]
    page = client.post(
        urljoin(str(page.url), login.action),
        data=_form_data(
            [*login.fields, ("username", username), ("password", password), ("action", "login")]
        ),
    )
    if page.is_redirect:
        return urljoin(str(page.url), page.headers["location"])
    [consent] = forms_of(page.text)
    keep = {"scope": keep_scopes, "resource_type": keep_types}
    scopes = [
        (name, value)
        for name, value in consent.checkboxes
        if keep.get(name) is None or value in (keep.get(name) or set())
    ]
    answer = client.post(
        urljoin(str(page.url), consent.action),
        data=_form_data([*consent.fields, *scopes, ("decision", decision)]),
    )
    assert answer.is_redirect, answer.text[:500]
    return urljoin(str(answer.url), answer.headers["location"])
