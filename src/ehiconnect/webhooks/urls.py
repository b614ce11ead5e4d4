"""What a webhook endpoint URL must look like, checked before it is stored (pure; no I/O).

The URL is parsed with the parser that delivers to it (httpx), then held to rules that leave no
room for two parsers to read it differently: no control characters, whitespace or backslashes; an
http(s) scheme, a host, no user:password@, no #fragment, a port from 1 to 65535; a host that is a
plain DNS name, an IPv6 literal without a zone, or an IPv4 address written as four decimal
numbers. A host like `0177.0.0.1`, `0x7f.1` or `2130706433` is refused rather than guessed at: the
system resolver reads those as 127.0.0.1 while other parsers read them as names, which is how an
address check gets slipped past. Internationalized names are stored in their ASCII (punycode)
form. Whether the host's addresses may be called is decided at delivery (`http/ssrf.py`), after
DNS resolution, not here.
"""

from __future__ import annotations

import ipaddress
import re

import httpx

from ehiconnect.http.ssrf import TargetRefused, check_url

MAX_URL_LENGTH = 2048

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMBER = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


class InvalidWebhookUrl(ValueError):
    """The URL cannot be a webhook endpoint; the message says what is wrong and what to do."""


def normalize_webhook_url(url: str, *, max_length: int = MAX_URL_LENGTH) -> str:
    """The URL as it will be stored and called, or InvalidWebhookUrl saying what is wrong."""
    url = url.strip()
    if not url:
        raise InvalidWebhookUrl("the URL is empty; give the receiver's https:// URL")
    if len(url) > max_length:
        raise InvalidWebhookUrl(
            f"the URL is {len(url)} characters long; at most {max_length} are accepted"
        )
    _refuse_odd_characters(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidWebhookUrl(f"the URL cannot be parsed ({exc}); check it") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidWebhookUrl(
            "the URL must start with https:// (or http://)"
            + (f", not {parsed.scheme}:" if parsed.scheme else "")
        )
    if parsed.userinfo:
        raise InvalidWebhookUrl(
            "the URL must not carry user:password@; authenticate the sender by the "
            "webhook signature instead"
        )
    if parsed.fragment:
        raise InvalidWebhookUrl("a webhook URL cannot have a #fragment; remove it")
    host = _checked_host(parsed)
    _check_port(parsed)
    try:
        checked = check_url(parsed.copy_with(host=host))
    except (TargetRefused, httpx.InvalidURL, ValueError) as exc:
        raise InvalidWebhookUrl(str(exc)) from None
    return str(checked)


def _refuse_odd_characters(url: str) -> None:
    for position, char in enumerate(url):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise InvalidWebhookUrl(
                f"the URL contains the control character U+{code:04X} at position {position}; "
                "remove it"
            )
        if char.isspace():
            raise InvalidWebhookUrl(
                f"the URL contains whitespace (U+{code:04X}) at position {position}; remove it "
                "or percent-encode it"
            )
        if char == "\\":
            raise InvalidWebhookUrl(
                f"the URL contains a backslash at position {position}; use / or percent-encode it"
            )


def _checked_host(parsed: httpx.URL) -> str:
    """The host in the form that is stored: lowercase ASCII, an IPv6 literal compressed."""
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise InvalidWebhookUrl("the URL has no host; write it as https://host/path")
    if ":" in host:  # an IPv6 literal (httpx drops the brackets)
        if "%" in host:
            raise InvalidWebhookUrl(
                "the URL's IPv6 address carries a zone (%…); a receiver needs a routable address"
            )
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise InvalidWebhookUrl(f"the URL's host [{host}] is not an IPv6 address") from None
    if len(host) > 253:
        raise InvalidWebhookUrl("the URL's host name is longer than 253 characters")
    labels = host.removesuffix(".").split(".")
    if _NUMBER.match(labels[-1]):
        # Ends in a number: browsers and the system resolver read it as an IPv4 address.
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = None
        if canonical != host:
            raise InvalidWebhookUrl(
                f"the URL's host {host} reads as an IPv4 address in a non-standard form "
                "(octal, hexadecimal, leading zeros or fewer than four parts); write it as four "
                "decimal numbers such as 203.0.113.7, or use the host's name"
            )
        return host
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidWebhookUrl(
                f"the URL's host {host} is not a valid host name (letters, digits and hyphens "
                "in dot-separated labels of at most 63 characters)"
            )
    return host


def _check_port(parsed: httpx.URL) -> None:
    port = parsed.port
    if port is not None and not 1 <= port <= 65535:
        raise InvalidWebhookUrl(f"the URL's port {port} is not between 1 and 65535")
