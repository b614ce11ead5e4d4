"""The consent widget ("Stitch", DESIGN §3): script and stylesheet, and the callback page.

The script and stylesheet ship as package data under `widget/static/`, so an installed wheel serves
the same bytes as a checkout; `widget_asset` reads one once and gives it with its media type and a
strong ETag. `render_callback_page` builds the page the OAuth callback ends on.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

from ehiconnect.widget.callback_page import (
    CALLBACK_PAGE_CSP,
    failure_result,
    render_callback_page,
    success_result,
)

__all__ = [
    "CALLBACK_PAGE_CSP",
    "FASTEN_ASSETS",
    "WIDGET_ASSETS",
    "WidgetAsset",
    "failure_result",
    "render_callback_page",
    "success_result",
    "widget_asset",
]

WIDGET_ASSETS: dict[str, str] = {
    "ehi-stitch-element.js": "text/javascript; charset=utf-8",
    "ehi-stitch-element.css": "text/css; charset=utf-8",
    "fasten-stitch-element.css": "text/css; charset=utf-8",
}
"""File name → media type of every file under `widget/static/`."""

FASTEN_ASSETS: dict[str, str] = {
    "fasten-stitch-element.js": "ehi-stitch-element.js",
    "fasten-stitch-element.css": "fasten-stitch-element.css",
}
"""What `/connect/v4/<name>` (Fasten Connect's CDN path, compat) serves: the same script, which
defines `<fasten-stitch-element>` too, and a stylesheet for the host page's `<head>` that styles
only the element's own box (the widget's inside is styled from its shadow root)."""


@dataclass(frozen=True)
class WidgetAsset:
    name: str
    content: bytes
    media_type: str
    etag: str
    """A strong validator, quoted as HTTP wants it: `"<first 32 hex of sha256>"`."""


@functools.cache
def widget_asset(name: str) -> WidgetAsset:
    """One of WIDGET_ASSETS, read from the package; KeyError for any other name."""
    media_type = WIDGET_ASSETS[name]
    content = resources.files("ehiconnect.widget").joinpath("static", name).read_bytes()
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    return WidgetAsset(name=name, content=content, media_type=media_type, etag=etag)
