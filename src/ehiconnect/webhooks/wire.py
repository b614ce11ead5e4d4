"""Webhook POSTs on asyncio protocols with `h11`: the sender's HTTP/1.1 client when untraced.

Why not httpx here: py-spy on a worker at 1,000 deliveries/s put two thirds of its CPU in
httpx/httpcore/anyio (the HTTP/1.1 state machine's wrappers, a cancel scope per socket read and
write, the pool's readability check, request and header models), a millisecond per delivery on
this machine (#17). Here a send is one write of the request's bytes and a protocol callback per
arriving segment, the bytes framed and parsed by `h11` (the parser httpcore itself uses).

What it keeps from the httpx path (`connections.ReceiverConnections`, still used when tracing is
on, for the instrumented HTTP span, or when a test injects a transport):

- every request resolved and checked by the SSRF guard (`ssrf.resolve_target`), connected to a
  checked address (`ssrf.connect_pinned`), TLS verified against the host name (SNI);
- connections kept alive per receiver, keyed by scheme, host name, port and address policy (a
  connection verified for one name is never lent to another), reused only when its peer is
  among the addresses the request has just resolved to; at most `idle_per_receiver` idle ones
  per receiver, each closed after `keepalive_seconds` idle;
- the same request headers, no redirects followed, no cookies kept, at most `max_bytes` of the
  answer read, one timeout over the whole exchange (resolve, connect, send, read);
- a kept connection the receiver had closed is replaced once without a failed attempt, when the
  receiver answered nothing on it (the request may then be sent again).

Errors are httpx's exception types (ConnectError, WriteError, ReadError, RemoteProtocolError,
LocalProtocolError), so callers and attempt records read the same as before.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from functools import lru_cache

import h11
import httpx

from ehiconnect.http.ssrf import (
    CappedResponse,
    IPAddress,
    Resolver,
    connect_pinned,
    resolve_target,
)

ReceiverKey = tuple[str, str, int | None, bool]

# httpx.AsyncClient's default headers, with the body read raw: a compressed body could expand
# far beyond the read cap. The caller's headers (user agent, content type) come after these.
_CLIENT_HEADERS = {"accept": "*/*", "connection": "keep-alive", "accept-encoding": "identity"}


@lru_cache(maxsize=4096)
def _parsed(url: str) -> tuple[httpx.URL, bytes, bytes]:
    # Endpoint URLs repeat from delivery to delivery: parse each once. (URL, Host, target)
    parsed = httpx.URL(url)
    return parsed, parsed.netloc, parsed.raw_path


_END = h11.EndOfMessage()


@lru_cache(maxsize=4096)
def _expected(target: bytes, host: bytes) -> h11.Request:
    # What a connection's state machine is told went out (see `expect_answer`). Events are
    # immutable: each receiver's is built, and validated, once.
    headers = [(b"host", host), (b"content-length", b"0")]
    return h11.Request(method=b"POST", target=target, headers=headers)


def request_bytes(target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A POST's bytes: request line, headers in the order given, body (its length among the
    headers). Refused (httpx.LocalProtocolError) if a name or value would break a line."""
    lines = [b"POST ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    head = b"".join(lines)
    # Exactly one CR and one LF per line: no value smuggles a header or ends the head early.
    expected = len(headers) + 2
    if head.count(b"\r") != expected or head.count(b"\n") != expected or b"\0" in head:
        raise httpx.LocalProtocolError("a request header would break its line")
    return head + body


class _Stale(Exception):
    """A kept connection was closed by the receiver before it answered anything."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: `await exchange(...)` sends a request and reads its answer."""

    def __init__(self, address: str) -> None:
        self.address = address  # the checked peer address it was opened to
        self.idle_since = 0.0
        self.open = True
        self._transport: asyncio.Transport | None = None
        self._h11 = h11.Connection(h11.CLIENT)
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._answered = False  # any byte of an answer arrived in this exchange
        self._status = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._max_bytes = 0
        self._truncated = False
        self._reusable = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for (on an idle connection): unusable
            return
        self._answered = True
        try:
            self._h11.receive_data(data)
            self._pump()
        except h11.RemoteProtocolError as exc:
            self._fail(httpx.RemoteProtocolError(str(exc)))

    def eof_received(self) -> bool:
        self._end_of_stream(None)
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._end_of_stream(exc)

    # the exchange

    async def exchange(self, request: bytes, max_bytes: int) -> CappedResponse:
        """Write a whole request, read the answer's status and at most `max_bytes` of its body.
        Raises _Stale (the connection had been closed, nothing answered) or httpx errors."""
        if not self.open or self._transport is None or self._transport.is_closing():
            self.open = False
            raise _Stale
        self._waiter = asyncio.get_running_loop().create_future()
        self._answered = False
        self._status = self._size = 0
        self._chunks = []
        self._max_bytes = max_bytes
        self._truncated = self._reusable = False
        self._transport.write(request)
        try:
            await self._waiter
        finally:
            self._waiter = None
        body = b"".join(self._chunks)
        self._chunks = []  # not kept while the connection idles
        return CappedResponse(self._status, body[:max_bytes], self._truncated)

    def expect_answer(self, target: bytes, host: bytes) -> None:
        """Tell the state machine a POST went out, so it frames the answer to one. The request's
        bytes are `request_bytes`': h11 validating and formatting every header was a fifth of a
        worker's CPU (#17), and what the answer's framing depends on is the method alone."""
        try:
            self._h11.send(_expected(target, host))
            self._h11.send(_END)
        except h11.LocalProtocolError as exc:  # a target h11 would not put on the wire
            self.close()
            raise httpx.LocalProtocolError(str(exc)) from exc

    @property
    def reusable(self) -> bool:
        return self.open and self._reusable

    def close(self) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.close()

    def _pump(self) -> None:
        while True:
            event = self._h11.next_event()
            kind = type(event)
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if kind is h11.Response:
                assert isinstance(event, h11.Response)
                self._status = event.status_code
            elif kind is h11.Data:
                assert isinstance(event, h11.Data)
                self._chunks.append(bytes(event.data))
                self._size += len(event.data)
                if self._size >= self._max_bytes:  # the cap: the rest is never read
                    self._truncated = self._size > self._max_bytes
                    self._done()
                    return
            elif kind is h11.EndOfMessage:
                h = self._h11
                if h.our_state is h11.DONE and h.their_state is h11.DONE:
                    h.start_next_cycle()
                    self._reusable = True
                self._done()
                return
            elif kind is h11.ConnectionClosed:
                self._fail(self._closed_error(None))
                return
            # InformationalResponse (1xx): the final answer follows

    def _end_of_stream(self, exc: Exception | None) -> None:
        if self._waiter is None or self._waiter.done():
            return
        if not self._eof:
            self._eof = True
            try:
                self._h11.receive_data(b"")
                self._pump()  # a body delimited by the close ends here
            except h11.RemoteProtocolError as error:
                self._fail(httpx.RemoteProtocolError(str(error)))
        if self._waiter is not None and not self._waiter.done():
            self._fail(self._closed_error(exc))

    def _closed_error(self, exc: Exception | None) -> Exception:
        if not self._answered:
            return _Stale()  # replaced once if the connection was a kept one
        if exc is not None:
            return httpx.ReadError(str(exc) or type(exc).__name__)
        return httpx.RemoteProtocolError("the receiver closed the connection mid-answer")

    def _done(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


class WireConnections:
    """`await connections.post(url, body, headers, allow_private=..., max_bytes=...)`;
    `aclose()` closes every idle connection. One event loop only."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        resolver: Resolver,
        headers: Mapping[str, str],
        idle_per_receiver: int,
        keepalive_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._resolver = resolver
        self._headers = [
            (name.encode("ascii"), value.encode("latin-1"))
            for name, value in {**_CLIENT_HEADERS, **headers}.items()
        ]
        self._idle_cap = idle_per_receiver
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context  # None: the system's CAs (tests bring their own)
        self._idle: dict[ReceiverKey, list[_Connection]] = {}
        self._swept = time.monotonic()
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
        parsed, host, target = _parsed(url)
        key = (parsed.scheme, parsed.host, parsed.port, allow_private)
        request_headers = [
            (b"host", host),
            *self._headers,
            *((name.encode("ascii"), value.encode("latin-1")) for name, value in headers.items()),
            (b"content-length", str(len(body)).encode("ascii")),
        ]
        request = request_bytes(target, request_headers, body)
        async with asyncio.timeout(self._timeout):
            addresses = await resolve_target(
                parsed, allow_private=allow_private, resolver=self._resolver
            )
            allowed = {str(address) for address in addresses}
            connection = self._borrow(key, allowed)
            reused = connection is not None
            for _ in (1, 2):
                if connection is None:
                    connection = await self._connect(parsed, addresses[0])
                try:
                    connection.expect_answer(target, host)
                    response = await connection.exchange(request, max_bytes)
                except _Stale:
                    connection.close()
                    if not reused:
                        raise httpx.RemoteProtocolError(
                            "the receiver closed the connection without answering"
                        ) from None
                    connection, reused = None, False  # once more, over a new connection
                    continue
                except BaseException:
                    connection.close()  # its state is unknown
                    raise
                self._give_back(key, connection)
                return response
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    async def _connect(self, url: httpx.URL, address: IPAddress) -> _Connection:
        text = str(address)
        try:
            _, connection = await connect_pinned(
                lambda: _Connection(text), url, address, ssl_context=self._ssl
            )
        except OSError as exc:  # refused, unreachable, TLS verification failed
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return connection

    def _borrow(self, key: ReceiverKey, allowed: set[str]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest = time.monotonic() - self._keepalive
        while idle:
            connection = idle.pop()  # last in, first out: the warmest connection goes next
            fresh = connection.open and connection.idle_since > oldest
            if fresh and connection.address in allowed:
                return connection
            connection.close()  # expired, closed by the receiver, or to an address not resolved
        return None

    def _give_back(self, key: ReceiverKey, connection: _Connection) -> None:
        now = time.monotonic()
        idle = self._idle.setdefault(key, [])
        if not connection.reusable or self._closed or len(idle) >= self._idle_cap:
            connection.close()
        else:
            connection.idle_since = now
            idle.append(connection)
        if now - self._swept > self._keepalive:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Close connections idle past the keep-alive, and forget receivers left without any."""
        self._swept = now
        oldest = now - self._keepalive
        for key in list(self._idle):
            kept = []
            for connection in self._idle[key]:
                if connection.open and connection.idle_since > oldest:
                    kept.append(connection)
                else:
                    connection.close()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
