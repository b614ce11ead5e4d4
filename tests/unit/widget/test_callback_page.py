"""The OAuth callback page: what it posts to the widget, to whom, and that results stay inert."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest

from ehiconnect.widget.callback_page import (
    CALLBACK_PAGE_CSP,
    failure_result,
    render_callback_page,
    success_result,
)

HOSTILE = "</script><script>alert(1)</script><!--"


class _PageParts(HTMLParser):
    """Collects the page's script blocks and visible text the way a browser tokenizes them."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)


def parse(page: str) -> _PageParts:
    parts = _PageParts()
    parts.feed(page)
    parts.close()
    return parts


def posted_message(page: str) -> dict[str, object]:
    """What the page's script hands to postMessage: the JSON block, as JSON.parse reads it."""
    blocks = [
        body for attrs, body in parse(page).scripts if attrs.get("type") == "application/json"
    ]
    assert len(blocks) == 1
    data: dict[str, object] = json.loads(blocks[0])
    return data


def a_success() -> dict[str, object]:
    return success_result(
        org_connection_id="0b6f1d7e-3c41-4b8e-9a55-1c2d3e4f5a6b",
        connection_status="authorized",
        platform_type="epic",
        brand_id="brand-1",
        portal_id="portal-1",
        endpoint_id="endpoint-1",
        api_mode="test",
    )


def test_success_page_posts_the_connection_to_the_given_origin() -> None:
    page = render_callback_page(a_success(), "https://app.example.com")

    message = posted_message(page)
    assert message == {
        "envelope": {
            "source": "ehiconnect",
            "type": "connection_result",
            "payload": {
                "status": "success",
                "org_connection_id": "0b6f1d7e-3c41-4b8e-9a55-1c2d3e4f5a6b",
                "connection_status": "authorized",
                "platform_type": "epic",
                "brand_id": "brand-1",
                "portal_id": "portal-1",
                "endpoint_id": "endpoint-1",
                "api_mode": "test",
            },
        },
        "targetOrigin": "https://app.example.com",
        "closeWithoutOpener": False,
    }
    assert "You're connected" in "".join(parse(page).text)


def test_a_page_whose_result_the_widget_polls_closes_even_without_an_opener() -> None:
    polled = posted_message(
        render_callback_page(a_success(), "https://app.example.com", close_without_opener=True)
    )
    plain = posted_message(render_callback_page(a_success(), "https://app.example.com"))

    assert polled["closeWithoutOpener"] is True
    assert plain["closeWithoutOpener"] is False
    assert polled["envelope"] == plain["envelope"]


def test_failure_page_posts_the_error_and_says_it_in_words() -> None:
    page = render_callback_page(
        failure_result("access_denied", "You declined to share your records."), None
    )

    message = posted_message(page)
    assert message["targetOrigin"] == "*"
    assert message["envelope"] == {
        "source": "ehiconnect",
        "type": "connection_result",
        "payload": {
            "status": "failed",
            "error": "access_denied",
            "error_description": "You declined to share your records.",
        },
    }
    assert "You declined to share your records." in "".join(parse(page).text)


def test_extra_keys_of_the_result_are_not_posted() -> None:
    result = {**a_success(), "access_token": "secret-token"}

    page = render_callback_page(result, None)

    assert "secret-token" not in page


def test_hostile_text_stays_inert_in_the_script_block_and_the_message() -> None:
    page = render_callback_page(failure_result(HOSTILE, HOSTILE), "https://app.example.com")

    parts = parse(page)
    # Exactly the page's own two scripts: the JSON block did not end early.
    assert len(parts.scripts) == 2
    assert "</script" not in page.split('id="ehiconnect-result">', 1)[1].split("</script>", 1)[0]
    assert "<!--" not in page.split('id="ehiconnect-result">', 1)[1].split("</script>", 1)[0]
    # The text round-trips unchanged to the widget and to the reader.
    payload = posted_message(page)["envelope"]
    assert isinstance(payload, dict)
    assert payload["payload"]["error_description"] == HOSTILE
    assert HOSTILE in "".join(parts.text)
    assert parts.tags.count("script") == 2


def test_the_inline_script_is_pinned_by_the_page_csp() -> None:
    page = render_callback_page(a_success(), None)

    inline = [body for attrs, body in parse(page).scripts if "type" not in attrs]
    assert len(inline) == 1
    assert "default-src 'none'" in CALLBACK_PAGE_CSP
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", CALLBACK_PAGE_CSP)
    assert "unsafe-inline" not in CALLBACK_PAGE_CSP
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CALLBACK_PAGE_CSP
    assert "Content-Security-Policy" in page


@pytest.mark.parametrize(
    "origin",
    ["https://app.example.com/path", "javascript:alert(1)", "app.example.com", "*", ""],
)
def test_a_target_origin_that_is_not_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="target_origin"):
        render_callback_page(a_success(), origin)


def test_target_origin_keeps_its_port_and_drops_a_trailing_slash() -> None:
    page = render_callback_page(a_success(), "http://127.0.0.1:8123/")

    assert posted_message(page)["targetOrigin"] == "http://127.0.0.1:8123"


@pytest.mark.parametrize(
    "result",
    [
        {"status": "ok"},
        {"status": "success", "org_connection_id": "x"},
        {"status": "failed", "error": "x"},
    ],
)
def test_an_incomplete_result_is_refused(result: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="result"):
        render_callback_page(result, None)
