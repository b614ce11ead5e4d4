"""Refuse outbound requests to addresses inside our own network (SSRF guard).

A URL's host is resolved once, every address is checked, and the connection is made to a checked
address (the URL is rewritten to the IP; `Host` and TLS SNI keep the name), so a DNS answer that
changes between check and connect (DNS rebinding) cannot slip a private address in. Redirects are
never followed and response bodies are read only up to a cap.

Policy: private, loopback, link-local, metadata, unspecified, multicast and other non-global
addresses are refused unless `allow_private` is set (test mode, or an explicit setting for
self-hosters whose receivers sit on a private network).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping

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


class TargetRefused(Exception):
    """The URL may not be called under the current policy; the message says why."""


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


async def resolve_target(
    url: httpx.URL | str, *, allow_private: bool, resolver: Resolver = system_resolver
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
    if not allow_private:
        for address in addresses:
            reason = refusal_reason(address)
            if reason is not None:
                raise TargetRefused(
                    f"refusing to call {host}: {reason}. Live-mode webhooks must reach a public "
                    "address; use a test-mode endpoint or set webhooks.allow_private_targets"
                )
    return addresses


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that resolves, checks, and connects to the checked address only."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        addresses = await resolve_target(
            request.url, allow_private=self._allow_private, resolver=self._resolver
        )
        host = request.url.host
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions.setdefault("sni_hostname", host)
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=str(addresses[0])),
            headers=request.headers,  # already carries Host: <original name>
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


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
