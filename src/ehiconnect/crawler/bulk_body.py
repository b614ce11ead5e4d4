"""A faster path for response bodies: the stdlib HTTP client in a thread.

httpx streams a body through its event-loop reads of 64 KiB at a time and tops out near 250 MB/s
on one connection here; `http.client` reading 1.5 MiB at a time in a worker thread reaches
1 to 2 GB/s (docs/exports.md, Performance). `BulkBodyTransport` is httpx's own transport sending
a request marked with the `BULK_BODY` extension that way and every other request through its
connection pool as usual, so the session's token handling, retries, adaptive limit, tracing and
the SSRF guard (which wraps this transport and pins the checked address) apply to both alike.
The crawl marks its attachments and its FHIR JSON reads (`FhirSession.get_json`): a search page
of hundreds of KiB is read here in one hop, not in 64 KiB event-loop reads that each wait their
turn behind the crawl's other work while the next page waits for the last of them.

Chunks are read ahead in the thread, up to `READ_AHEAD` per hop, while the caller uses the ones it
has: a caller that stops to wait on its own consumers (packaging's hash and write) does not stop
the socket draining, and the server sending. A body whose declared length fits in one chunk (most
attachments) is read in the thread hop that got its headers, not in hops of its own. Connections
whose body was read to the end are kept (as many per host as there are threads, so a crawl's next
round of downloads reuses them rather than connecting anew) for the next bulk request. The threads
are the transport's own: a thread waits for a response's headers as long as the server takes, and
on asyncio's small default pool that would hold back every other `to_thread` of the process. When
a transport closes its set of threads is kept, idle, for the next crawl's transport (`_ThreadSets`):
each crawl still has a set to itself, but does not start its threads anew on the event loop
(16 thread starts, 4 % of a small crawl's event-loop time, py-spy). A body still being read when
its transport closes fails at its next read (its threads may be serving another crawl by then),
and its connection is closed rather than kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import httpcore
import httpx

BULK_BODY = "ehiconnect.bulk_body"
CHUNK_SIZE = 3 << 19  # 1.5 MiB, a multiple of 3: base64 encodes every chunk whole, no carry
READ_AHEAD = 3  # chunks read per thread hop: a large body holds at most 2 x 3 x 1.5 MiB
THREADS = 16  # above any per-source request limit; idle threads cost nothing
IDLE_PER_HOST = THREADS
KEPT_THREAD_SETS = 8  # idle sets kept for the next crawls (a worker runs a few crawls at once)
T = TypeVar("T")

_Origin = tuple[str, str, int, str | None]


class _HTTPSConnection(http.client.HTTPSConnection):
    """Connects to the (possibly pinned) address, verifying the certificate of `sni_hostname`."""

    def __init__(self, host: str, port: int, *, sni: str, context: ssl.SSLContext, **kw: Any):
        super().__init__(host, port, context=context, **kw)
        self._sni = sni
        self._ssl_context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._ssl_context.wrap_socket(self.sock, server_hostname=self._sni)


class BulkBodyTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool fronted by `_BulkPool`: requests (and their
    tracing, which wraps this transport's `handle_async_request`) go through httpx as usual."""

    def __init__(self, *, ssl_context: ssl.SSLContext, chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__(verify=ssl_context, retries=0)
        self._pool = _BulkPool(self._pool, ssl_context, chunk_size)  # type: ignore[assignment]


def _in_thread(executor: ThreadPoolExecutor, work: Callable[[], T]) -> asyncio.Future[T]:
    return asyncio.get_running_loop().run_in_executor(executor, work)


class _ThreadSets:
    """Each open transport's own set of `THREADS` threads, handed back when it closes and given to
    the next transport, up to `keep` idle sets (one more is shut down)."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="bulk-body")

    def give_back(self, threads: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(threads)
                return
        threads.shutdown(wait=False)


_THREAD_SETS = _ThreadSets(KEPT_THREAD_SETS)


class _BulkPool:
    """Sends `BULK_BODY` GETs itself and hands every other request to httpcore's pool."""

    def __init__(self, inner: Any, ssl_context: ssl.SSLContext, chunk_size: int) -> None:
        self._inner = inner
        self._ssl_context = ssl_context
        self._chunk_size = chunk_size
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._threads: ThreadPoolExecutor | None = _THREAD_SETS.take()  # until handed back

    @property
    def executor(self) -> ThreadPoolExecutor:
        """This transport's threads while it is open. Once closed they may serve the next crawl:
        a request or a body read after the close fails instead of taking one of them."""
        threads = self._threads
        if threads is None:
            raise httpcore.ReadError(
                "the crawl's HTTP transport was closed before this body was read to its end"
            )
        return threads

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if not request.extensions.get(BULK_BODY) or request.method != b"GET":
            return cast(httpcore.Response, await self._inner.handle_async_request(request))
        return await _in_thread(self.executor, lambda: self._send(request))

    async def aclose(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
            threads, self._threads = self._threads, None
        for connections in idle.values():
            for connection in connections:
                connection.close()
        if threads is not None:  # once: a set handed back twice would serve two transports
            _THREAD_SETS.give_back(threads)
        await self._inner.aclose()

    # ------------------------------------------------------------------ in the worker thread

    def _send(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        scheme = url.scheme.decode("ascii")
        timeouts = request.extensions.get("timeout", {})
        timeout = timeouts.get("read") or timeouts.get("connect")
        sni = request.extensions.get("sni_hostname")
        origin: _Origin = (
            scheme,
            url.host.decode("ascii"),
            url.port or (443 if scheme == "https" else 80),
            sni.decode() if isinstance(sni, bytes) else sni,
        )
        target = url.target.decode("ascii")
        fresh = False
        while True:
            connection = None if fresh else self._take_idle(origin)
            if connection is None:
                fresh = True
                connection = self._connect(origin, timeout)
            try:
                connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
                for name, value in request.headers:
                    connection.putheader(name.decode("latin-1"), value.decode("latin-1"))
                connection.endheaders()
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if not fresh:
                    fresh = True  # an idle connection the server had closed: once more, anew
                    continue
                raise _mapped(exc, request) from None
            break
        body = _ThreadedBody(self, origin, connection, response, self._chunk_size, request)
        if response.length is not None and response.length <= self._chunk_size:
            body.read_ahead_here()  # small: in this hop, not one more there and back
        return httpcore.Response(
            status=response.status,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()],
            content=body,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": response.reason.encode("latin-1", "replace"),
            },
        )

    def _connect(self, origin: _Origin, timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port, sni = origin
        if scheme == "https":
            return _HTTPSConnection(
                host, port, sni=sni or host, context=self._ssl_context, timeout=timeout
            )
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _take_idle(self, origin: _Origin) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def give_back(self, origin: _Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if self._threads is not None:  # open: kept for the next request; closed: no one's
                idle = self._idle.setdefault(origin, [])
                if len(idle) < IDLE_PER_HOST:
                    idle.append(connection)
                    return
        connection.close()


class _ThreadedBody:
    def __init__(
        self,
        transport: _BulkPool,
        origin: _Origin,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        chunk_size: int,
        request: httpcore.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._response = response
        self._chunk_size = chunk_size
        self._request = request
        self._ahead: asyncio.Future[tuple[list[bytes], bool]] | None = None
        self._failure: Exception | None = None  # met after a batch's first chunk
        self._first: bytes | Exception | None = None  # read with the headers (small bodies)
        self._finished = False
        self._closed = False

    def read_ahead_here(self) -> None:
        """In the worker thread that got the headers: read the first chunk (a small body's
        whole) now; a failure is raised where the caller's iteration would have met it."""
        try:
            self._first = self._read()
        except Exception as exc:  # handed to the caller's iteration
            self._first = exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            if isinstance(first, Exception):
                raise first
            if not first or self._response.isclosed():  # the whole body (or none) is here
                self._finished = True
                if first:
                    yield first
                return
            self._ahead = _in_thread(self._transport.executor, self._read_batch)
            yield first
        while not self._finished:
            if self._ahead is None:
                self._ahead = _in_thread(self._transport.executor, self._read_batch)
            chunks, ended = await self._ahead
            self._ahead = None
            if ended:
                self._finished = True  # read to its end: the connection can serve another
            else:
                self._ahead = _in_thread(self._transport.executor, self._read_batch)
            for chunk in chunks:
                yield chunk

    def _read_batch(self) -> tuple[list[bytes], bool]:
        """Up to `READ_AHEAD` chunks in one thread hop, and whether the body ended with them.
        The next batch is read while the caller uses this one, so the socket keeps draining
        while the caller waits on its own consumers (an export file's hash and write). A failure
        after some chunks is raised by the next batch, once the caller has had those."""
        if self._failure is not None:
            raise self._failure
        chunks: list[bytes] = []
        while len(chunks) < READ_AHEAD:
            try:
                chunk = self._read()
            except Exception as exc:
                if not chunks:
                    raise
                self._failure = exc
                return chunks, False
            if not chunk:
                return chunks, True
            chunks.append(chunk)
            if self._response.isclosed():  # the declared length is in
                return chunks, True
        return chunks, False

    def _read(self) -> bytes:
        try:
            chunk = self._response.read(self._chunk_size)
        except (OSError, http.client.HTTPException) as exc:
            raise _mapped(exc, self._request) from None
        if not chunk and self._response.length:
            # http.client ends the body quietly when the server closes before Content-Length.
            raise httpcore.RemoteProtocolError(
                f"the body ended {self._response.length} bytes short of its Content-Length"
            )
        return chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        ahead, self._ahead = self._ahead, None
        if ahead is not None:  # the thread must be done with the socket before it is closed
            with contextlib.suppress(Exception):
                await ahead
        if self._finished and not self._response.will_close:
            self._response.close()
            self._transport.give_back(self._origin, self._connection)
        else:
            self._response.close()
            self._connection.close()


def _mapped(exc: BaseException, request: httpcore.Request) -> Exception:
    """The httpcore error httpx maps for its callers, for a stdlib failure."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return httpcore.ReadTimeout(str(exc) or "timed out")
    if isinstance(exc, http.client.HTTPException):
        return httpcore.RemoteProtocolError(type(exc).__name__)
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return httpcore.ConnectError(str(exc))
    return httpcore.ReadError(str(exc))
