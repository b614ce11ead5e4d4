"""Which web origins may call the browser-facing API for an organization (pure)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ehiconnect.db.models import Organization
from ehiconnect.errors import InvalidRequest
from ehiconnect.ids import ApiMode
from ehiconnect.orgs.validation import normalize_origin

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


def origin_of(url: str | None) -> str | None:
    """The origin of a URL (e.g. a Referer), or None when it has none."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: "http://[::1"
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(origin: str, org: Organization, mode: ApiMode) -> bool:
    """Registered origins always; in test mode also any loopback origin, for local development."""
    try:
        normalized = normalize_origin(origin)
    except InvalidRequest:
        return False
    if normalized in org.allowed_origins:
        return True
    host = urlsplit(normalized).hostname or ""
    return mode == "test" and (host in LOOPBACK_HOSTS or host.endswith(".localhost"))
