"""Kept-alive connections to webhook receivers, reused from one pass to the next.

A lane is a guarded transport holding at most one connection. Each send borrows an idle lane of
its receiver (scheme, host name, port and address policy), or opens a new one when all are busy,
and gives it back when the response is read; up to `idle_per_receiver` idle lanes are kept, each
connection for at most `keepalive_seconds` of idleness. So a steady flow to a receiver goes out
over connections already open, and a pass never waits for a connection: it has as many as it
has sends in flight, as before.

Why lanes of one connection rather than one pool per receiver: httpcore's pool scans every
connection it holds for each request it assigns, so a pool of a hundred kept connections cost
more CPU than connecting anew (2 s of client CPU per 2,000 sends with no keep-alive, 6.4 s
keeping 100, measured on loopback); a lane's pool holds one.

Lanes are keyed by host name, not address: the SSRF guard still resolves and checks every
request (and connects to the checked address), and a connection verified for one name is never
lent to another name that resolves to the same address.

Why no `httpx.AsyncClient` around the lane's transport: the client's
per-request work (merging default headers and URL, cookies, auth and redirect hooks, none of
which a webhook uses) was a quarter of a worker's CPU per delivery (#17). `post` builds the
request a client would have sent (the same headers, no redirects followed, no cookies kept) and
reads at most `max_bytes` of the answer, within one timeout for the whole exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from functools import cache, lru_cache
from typing import Protocol

import httpx

from ehiconnect.http.ssrf import CappedResponse, GuardedTransport, Resolver

ReceiverKey = tuple[str, str, int | None, bool]


class Poster(Protocol):
    """What the sender posts through: these kept-alive httpx lanes, or `wire.WireConnections`."""

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        allow_private: bool,
        max_bytes: int,
    ) -> CappedResponse: ...

    async def aclose(self) -> None: ...


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; build it once per process.
    return ssl.create_default_context()


@lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    # Endpoint URLs repeat from delivery to delivery: parse each once.
    return httpx.URL(url)


# What a kept-alive connection the receiver had closed fails with, before any response.
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# httpx.AsyncClient's default headers, with the body read raw: a compressed body could expand
# far beyond the read cap. The caller's headers (user agent, content type) come after these.
_CLIENT_HEADERS = {"accept": "*/*", "connection": "keep-alive", "accept-encoding": "identity"}


class ReceiverConnections:
    """`await connections.post(url, body, headers, allow_private=..., max_bytes=...)`;
    `aclose()` closes every idle lane."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        resolver: Resolver,
        headers: Mapping[str, str],
        idle_per_receiver: int,
        keepalive_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._timeouts = {"timeout": httpx.Timeout(timeout_seconds).as_dict()}
        self._resolver = resolver
        self._headers = {**_CLIENT_HEADERS, **headers}
        self._idle_cap = idle_per_receiver
        self._keepalive = keepalive_seconds
        self._transport = transport  # injected (tests): shared by every lane, never closed here
        self._idle: dict[ReceiverKey, list[GuardedTransport]] = {}
        self._closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        allow_private: bool,
        max_bytes: int,
    ) -> CappedResponse:
        """POST `body` through the SSRF guard over a kept-alive connection, once more over a new
        one if the receiver had closed the kept one (it answered nothing: the request may be sent
        again). Raises httpx.HTTPError, TargetRefused, or TimeoutError."""
        parsed = _parsed(url)
        for attempt in (1, 2):
            reused = False
            try:
                async with self._lane(parsed, allow_private=allow_private) as (lane, reused):
                    return await self._exchange(lane, parsed, body, headers, max_bytes)
            except STALE_CONNECTION:
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self,
        lane: GuardedTransport,
        url: httpx.URL,
        body: bytes,
        headers: Mapping[str, str],
        max_bytes: int,
    ) -> CappedResponse:
        """One request and at most `max_bytes` of its answer, all within the timeout, so a
        receiver trickling bytes cannot hold a worker."""
        # Host and Content-Length written here, the body given as a stream: httpx then skips
        # filling them in header by header (a tenth of the CPU per delivery, #17).
        request = httpx.Request(
            "POST",
            url,
            headers={
                "host": url.netloc.decode("ascii"),
                **self._headers,
                **headers,
                "content-length": str(len(body)),
            },
            stream=httpx.ByteStream(body),
            extensions=self._timeouts,
        )
        async with asyncio.timeout(self._timeout):
            response = await lane.handle_async_request(request)
            try:
                stream = response.stream
                if not isinstance(stream, httpx.AsyncByteStream):
                    raise TypeError("an async transport answered with a synchronous stream")
                chunks: list[bytes] = []
                size = 0
                truncated = False
                async for chunk in stream:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= max_bytes:
                        truncated = size > max_bytes
                        break
            finally:
                await response.aclose()
        return CappedResponse(response.status_code, b"".join(chunks)[:max_bytes], truncated)

    @contextlib.asynccontextmanager
    async def _lane(
        self, parsed: httpx.URL, *, allow_private: bool
    ) -> AsyncIterator[tuple[GuardedTransport, bool]]:
        """A guarded transport for one request, and whether its connection was used before."""
        key = (parsed.scheme, parsed.host, parsed.port, allow_private)
        idle = self._idle.setdefault(key, [])
        reused = bool(idle)
        lane = idle.pop() if idle else self._new_lane(allow_private)
        try:
            yield lane, reused
        except BaseException:
            await self._close(lane)  # the connection's state is unknown
            raise
        if self._closed or len(idle) >= self._idle_cap:
            await self._close(lane)
        else:
            idle.append(lane)  # last in, first out: the warmest connection goes next

    async def aclose(self) -> None:
        self._closed = True
        lanes = [lane for idle in self._idle.values() for lane in idle]
        self._idle.clear()
        for lane in lanes:
            await self._close(lane)

    def _new_lane(self, allow_private: bool) -> GuardedTransport:
        inner = self._transport or httpx.AsyncHTTPTransport(
            verify=_tls_context(),
            retries=0,
            limits=httpx.Limits(
                max_connections=1,
                max_keepalive_connections=1,
                keepalive_expiry=self._keepalive,
            ),
        )
        return GuardedTransport(allow_private=allow_private, resolver=self._resolver, inner=inner)

    async def _close(self, lane: GuardedTransport) -> None:
        if self._transport is None:
            await lane.aclose()
