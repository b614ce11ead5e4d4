"""Checks on what an organization registers: redirect URIs and embedding origins (pure)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from ehiconnect.errors import InvalidRequest


def normalize_redirect_uri(uri: str) -> str:
    parts = _split(uri, f"redirect URI {uri!r} is not a valid URL")
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidRequest(f"redirect URI {uri!r} must be an absolute http(s) URL")
    if parts.fragment:
        raise InvalidRequest(f"redirect URI {uri!r} must not contain a #fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise InvalidRequest(f"redirect URI {uri!r} must use https (http is allowed for localhost)")
    return uri.strip()


def normalize_origin(origin: str) -> str:
    parts = _split(origin, f"origin {origin!r} must look like https://app.example.com")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequest(f"origin {origin!r} must look like https://app.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidRequest(f"origin {origin!r} must be scheme://host[:port] with no path")
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number from 0 to 65535
        raise InvalidRequest(f"origin {origin!r} has an invalid port") from None
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def _split(url: str, problem: str) -> SplitResult:
    try:
        return urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed IPv6 bracket: "http://[::1"
        raise InvalidRequest(problem) from None


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost")
