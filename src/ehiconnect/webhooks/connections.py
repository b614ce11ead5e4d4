"""Kept-alive connections to webhook receivers, reused from one pass to the next.

A lane is a guarded client holding at most one connection. Each send borrows an idle lane of
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
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from functools import cache

import httpx

from ehiconnect.http.ssrf import Resolver, guarded_client

ReceiverKey = tuple[str, str, int | None, bool]


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; build it once per process.
    return ssl.create_default_context()


class ReceiverConnections:
    """`async with connections.lane(url, allow_private=...) as (client, reused): ...`;
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
        self._resolver = resolver
        self._headers = dict(headers)
        self._idle_cap = idle_per_receiver
        self._keepalive = keepalive_seconds
        self._transport = transport  # injected (tests): shared by every lane, never closed here
        self._idle: dict[ReceiverKey, list[httpx.AsyncClient]] = {}
        self._closed = False

    @contextlib.asynccontextmanager
    async def lane(
        self, url: str, *, allow_private: bool
    ) -> AsyncIterator[tuple[httpx.AsyncClient, bool]]:
        """A client for one request to `url`, and whether its connection was used before."""
        parsed = httpx.URL(url)
        key = (parsed.scheme, parsed.host, parsed.port, allow_private)
        idle = self._idle.setdefault(key, [])
        reused = bool(idle)
        client = idle.pop() if idle else self._new_lane(allow_private)
        try:
            yield client, reused
        except BaseException:
            await self._close(client)  # the connection's state is unknown
            raise
        if self._closed or len(idle) >= self._idle_cap:
            await self._close(client)
        else:
            idle.append(client)  # last in, first out: the warmest connection goes next

    async def aclose(self) -> None:
        self._closed = True
        lanes = [client for idle in self._idle.values() for client in idle]
        self._idle.clear()
        for client in lanes:
            await self._close(client)

    def _new_lane(self, allow_private: bool) -> httpx.AsyncClient:
        inner = self._transport or httpx.AsyncHTTPTransport(
            verify=_tls_context(),
            retries=0,
            limits=httpx.Limits(
                max_connections=1,
                max_keepalive_connections=1,
                keepalive_expiry=self._keepalive,
            ),
        )
        return guarded_client(
            allow_private=allow_private,
            timeout_seconds=self._timeout,
            resolver=self._resolver,
            inner=inner,
            headers=self._headers,
        )

    async def _close(self, client: httpx.AsyncClient) -> None:
        if self._transport is None:
            await client.aclose()
