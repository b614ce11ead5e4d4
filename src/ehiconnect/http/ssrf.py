"""Refuse outbound requests to addresses inside our own network (SSRF guard).

A URL's host is resolved once, every address is checked, and the connection is made to a checked
address (the URL is rewritten to the IP; `Host` and TLS SNI keep the name), so a DNS answer that
changes between check and connect (DNS rebinding) cannot slip a private address in. Redirects are
never followed and response bodies are read only up to a cap.

Policy: private, loopback, link-local, metadata, unspecified, multicast and other non-global
addresses are refused unless `allow_private` is set (test mode, or an explicit setting for
self-hosters whose receivers sit on a private network); `refuse_metadata` keeps the cloud
metadata addresses refused even then. `remedy` is the sentence a refusal ends with: what the
person reading it can do.

A transport may trust some bases (`trusted_bases`): a URL under one of them (same scheme, host and
port, path below the base's; see `is_under_base`) is the configured service itself and goes out
unchecked; every other URL is checked. The crawler trusts the endpoint's FHIR base this way, so the
data a health system serves cannot point the worker anywhere else unchecked.

One client can serve callers with different policies: a request carrying the extension
`reach(allow_private=True)` may go to private addresses (never to metadata ones, when the
transport refuses them), whatever the transport's default.

A client lighter than httpx (the webhook sender's, `webhooks/wire.py`) checks with
`resolve_target` and connects with `connect_pinned`: to a checked address, TLS verified against
the URL's host name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import cache
from typing import TypeVar

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Cloud metadata services; most are link-local or private anyway, listed so the refusal says why.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# The request extension that overrides a transport's `allow_private` for one request.
ALLOW_PRIVATE_EXTENSION = "ehiconnect.allow_private"

SOURCE_REMEDY = (
    "Live-mode health systems must be reached at public addresses; if this one lives on a "
    "private network, the platform operator can allow it with "
    "`ehiconnect catalog configure <endpoint id> --allow-private-network`"
)

WEBHOOK_REMEDY = (
    "Live-mode webhooks must reach a public address; use a test-mode endpoint or set "
    "webhooks.allow_private_targets"
)
# Percent-encoded dots, slashes and backslashes: a server may decode them into `..` or `/` and
# climb out of the base path, so a URL carrying them is never taken to be under a base.
_ENCODED_PATH_TRICKS = re.compile(rb"%(2e|2f|5c)", re.IGNORECASE)


class TargetRefused(Exception):
    """The URL may not be called under the current policy; the message says why."""


class ResponseTooLarge(TargetRefused):
    """A checked target's response body went past the transport's size cap."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver returns for `host`."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` must not be called from a live-mode delivery, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return None if inner is None else f"{inner} (embedded in {address})"
        # Strip a zone id (fe80::1%eth0) before the checks below.
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    if not address.is_global:
        return f"{address} is not a globally routable address"
    return None


def check_url(url: httpx.URL | str) -> httpx.URL:
    """Parse and check the parts of a target URL that need no DNS."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise TargetRefused(
            f"URL scheme {parsed.scheme!r} is not allowed; use https:// (or http://)"
        )
    if not parsed.host:
        raise TargetRefused(f"URL {url!s} has no host")
    if parsed.userinfo:
        raise TargetRefused("URLs with user:password@ are not allowed; put credentials elsewhere")
    return parsed


def _port_of(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def is_under_base(url: httpx.URL | str, base: httpx.URL | str) -> bool:
    """True when `url` names something on the service at `base`, compared as parsed parts.

    Same scheme, host and effective port (80/443 when absent), no userinfo, and a path equal to
    the base's or below it at a segment boundary (`/fhir/r4` covers `/fhir/r4/Patient`, not
    `/fhir/r4evil`). Strings that merely look alike (`ehr.example.org.evil.com`,
    `ehr.example.org@evil.com`, another port) are not under it. Both are parsed by httpx, the
    parser that also connects, so the check and the request cannot disagree about the host.
    """
    try:
        target = httpx.URL(url)
        root = httpx.URL(base)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    if target.userinfo or not target.host or not root.host:
        return False
    if (target.scheme, target.host, _port_of(target)) != (root.scheme, root.host, _port_of(root)):
        return False
    path = target.raw_path.split(b"?", 1)[0]
    root_path = root.raw_path.split(b"?", 1)[0].rstrip(b"/")
    if path != root_path and not path.startswith(root_path + b"/"):
        return False
    return not _ENCODED_PATH_TRICKS.search(path[len(root_path) :])


async def resolve_target(
    url: httpx.URL | str,
    *,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    refuse_metadata: bool = False,
    remedy: str = WEBHOOK_REMEDY,
) -> list[IPAddress]:
    """The addresses to connect to; raise TargetRefused if any is forbidden by the policy.

    Every resolved address is checked, not just the first: a name that resolves to a public and a
    private address is refused as a whole.
    """
    parsed = check_url(url)
    host = parsed.host
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            resolved = await resolver(host, _port_of(parsed))
        except OSError as exc:
            raise TargetRefused(f"cannot resolve {host}: {exc}; check the endpoint URL") from exc
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
    if not addresses:
        raise TargetRefused(f"{host} resolves to no address; check the endpoint URL")
    for address in addresses:
        if allow_private:
            reason = _metadata_reason(address) if refuse_metadata else None
        else:
            reason = refusal_reason(address)
        if reason is not None:
            raise TargetRefused(f"refusing to call {host}: {reason}. {remedy}")
    return addresses


def _metadata_reason(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _metadata_reason(embedded)
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    return None


_P = TypeVar("_P", bound=asyncio.BaseProtocol)


@cache
def default_tls_context() -> ssl.SSLContext:
    """The system's CA bundle and hostname checking, built once per process (it costs ms)."""
    return ssl.create_default_context()


async def connect_pinned(
    protocol_factory: Callable[[], _P],
    url: httpx.URL,
    address: IPAddress,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[asyncio.Transport, _P]:
    """An asyncio connection to `address`, which `resolve_target(url, ...)` returned, for a
    client lighter than httpx (the webhook sender's): TCP to the checked address and the URL's
    port; for https, TLS verified against the URL's host name (SNI), never the address, with
    `ssl_context` or the system's CAs. OSError (ssl.SSLError included) when it cannot connect."""
    loop = asyncio.get_running_loop()
    tls = url.scheme == "https"
    return await loop.create_connection(
        protocol_factory,
        host=str(address),
        port=_port_of(url),
        ssl=(ssl_context or default_tls_context()) if tls else None,
        server_hostname=url.host if tls else None,
    )


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that resolves, checks, and connects to the checked address only.

    URLs under one of `trusted_bases` go to `inner` unchanged. Every other request is checked;
    with `max_response_bytes`, its body is asked for uncompressed and cut off past the cap
    (ResponseTooLarge while reading). A client that follows redirects sends each hop through
    here, so every hop is checked again.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        inner: httpx.AsyncBaseTransport | None = None,
        refuse_metadata: bool = False,
        remedy: str = WEBHOOK_REMEDY,
        trusted_bases: Sequence[str] = (),
        max_response_bytes: int | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)
        self._refuse_metadata = refuse_metadata
        self._remedy = remedy
        self._trusted = tuple(httpx.URL(base) for base in trusted_bases)
        self._max_bytes = max_response_bytes

    def is_trusted(self, url: httpx.URL | str) -> bool:
        return any(is_under_base(url, base) for base in self._trusted)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.is_trusted(request.url):
            return await self._inner.handle_async_request(request)
        allow_private = request.extensions.get(ALLOW_PRIVATE_EXTENSION, self._allow_private)
        addresses = await resolve_target(
            request.url,
            allow_private=bool(allow_private),
            resolver=self._resolver,
            refuse_metadata=self._refuse_metadata,
            remedy=self._remedy,
        )
        host = request.url.host
        extensions = dict(request.extensions)
        extensions.pop(ALLOW_PRIVATE_EXTENSION, None)
        if request.url.scheme == "https":
            extensions.setdefault("sni_hostname", host)
        headers = request.headers.copy()  # already carries Host: <original name>
        if self._max_bytes is not None:
            # Raw bytes only: a compressed body could expand far beyond the cap.
            headers["accept-encoding"] = "identity"
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=str(addresses[0])),
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )
        response = await self._inner.handle_async_request(pinned)
        if self._max_bytes is None:
            return response
        return await _capped(response, self._max_bytes, host)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int, too_large: Exception) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._too_large = too_large

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._max_bytes:
                raise self._too_large
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _capped(response: httpx.Response, max_bytes: int, host: str) -> httpx.Response:
    too_large = ResponseTooLarge(
        f"the response from {host} is larger than the {max_bytes}-byte limit for addresses "
        "outside the configured service"
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        await response.aclose()
        raise too_large
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("an async transport answered with a synchronous stream")
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=_CappedStream(stream, max_bytes, too_large),
        extensions=response.extensions,
    )


def reach(*, allow_private: bool) -> dict[str, object]:
    """Request extensions saying whether this request may go to a private address."""
    return {ALLOW_PRIVATE_EXTENSION: allow_private}


def guarded_client(
    *,
    allow_private: bool,
    timeout_seconds: float,
    resolver: Resolver = system_resolver,
    inner: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for calling customer URLs: guarded, no redirects, no proxies from env."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=allow_private, resolver=resolver, inner=inner),
        follow_redirects=False,
        trust_env=False,
        timeout=timeout_seconds,
        # Raw bytes only: a compressed body could expand far beyond the read cap.
        headers={"accept-encoding": "identity", **(headers or {})},
    )


@dataclasses.dataclass(frozen=True)
class CappedResponse:
    status_code: int
    body: bytes  # at most max_bytes
    truncated: bool


async def send_capped(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    max_bytes: int,
    timeout_seconds: float,
) -> CappedResponse:
    """Send without following redirects; read at most `max_bytes` of the body.

    `timeout_seconds` bounds the whole exchange, so a receiver trickling bytes cannot hold a worker.
    Raises httpx.HTTPError, TargetRefused, or TimeoutError.
    """
    async with asyncio.timeout(timeout_seconds):
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size >= max_bytes:
                    truncated = size > max_bytes
                    break
            body = b"".join(chunks)[:max_bytes]
        finally:
            await response.aclose()
    return CappedResponse(status_code=response.status_code, body=body, truncated=truncated)
