"""The crawler's HTTP seam to one health system's FHIR API.

`FhirSession` sends every request with the patient's access token, through an adaptive limit on
requests in flight (halved on 429/503, grown back after successes, paused for `Retry-After`), and
retries transient failures (no response, 408/425/429/5xx, a body that is not JSON) on the
`RetryPolicy`. A 401 gets one fresh token and one more try. Anything else becomes a `FetchError`
that the engine writes to the export's error report. The export's deadline is checked before each
request.

Every request goes through the session's own client, built from an `OutboundAccess` when the
session opens (`async with FhirSession(...)`), so no caller can pass an unguarded one. URLs under
the endpoint's FHIR base are the endpoint the operator configured; any other URL a health system's
data names (an attachment elsewhere, a `next` link to another host) goes through the SSRF guard
of `http/ssrf.py` and never carries the patient's token. A refused URL is a `FetchError` with
`refused` set and is not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import itertools
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

# httpx's connection layer loads anyio's asyncio backend when a process first sends: on a
# worker's first export, in the middle of its crawl (0.05-0.2 s of imports on the event loop
# here). Loaded with this module instead (a later anyio that moved it loads it on first use).
with contextlib.suppress(ImportError):
    import anyio._backends._asyncio  # noqa: F401

from ehiconnect import __version__, metrics
from ehiconnect.clock import Clock
from ehiconnect.crawler.attachments import fetch_attachment
from ehiconnect.crawler.bulk_body import BULK_BODY, BulkBodyTransport
from ehiconnect.crawler.policy import AdaptiveConcurrency, ConcurrencyBounds, RetryPolicy
from ehiconnect.crawler.ports import AttachmentSink
from ehiconnect.crawler.ports import FetchError as FetchError  # raised here; callers catch it
from ehiconnect.errors import FatalError
from ehiconnect.http.bounded_body import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    BodyUndecodable,
    BoundedBody,
)
from ehiconnect.http.ssrf import (
    GuardedTransport,
    Resolver,
    TargetRefused,
    is_under_base,
    system_resolver,
)

log = logging.getLogger(__name__)

TokenSource = Callable[[str | None], Awaitable[str]]
"""`await token(rejected)`: a usable access token; `rejected` is one the server just refused."""

MAX_TOKEN_RENEWALS = 3
ERROR_BODY_BYTES = 64 << 10  # read of a refusal's body, to keep its connection; past it, closed
TOKEN_REUSE_SECONDS = 5.0

OFF_BASE_REMEDY = (
    "The URL is outside the endpoint's FHIR base; if this health system lives on a private "
    "network, the platform operator can allow it with "
    "`ehiconnect catalog configure <endpoint id> --allow-private-network`"
)


@dataclass(frozen=True)
class OutboundAccess:
    """Where a crawl may connect outside its endpoint's FHIR base, and how.

    `allow_private`: test mode (the sandbox runs on loopback) or an endpoint the operator marked
    `allow_private_network`; cloud metadata addresses stay refused either way.
    `max_off_base_bytes`: the largest response taken from outside the base.
    `max_json_bytes`: the largest FHIR JSON body taken from anywhere, once decompressed (it is
    held in memory to be parsed); attachments are streamed and bounded otherwise.
    """

    allow_private: bool
    timeout_seconds: float
    max_off_base_bytes: int
    max_json_bytes: int
    resolver: Resolver = system_resolver
    transport: httpx.AsyncBaseTransport | None = None  # the connection layer; tests inject one


class DeadlineExceeded(FatalError):
    def __init__(self) -> None:
        super().__init__(
            "the export ran past its deadline; the health system may be slow or very large — "
            "request a new export, or raise exports.deadline_minutes",
            failure_reason="timeout",
        )


class Priority(IntEnum):
    """Which waiting request gets a free slot first: the ones others wait for."""

    CHAIN = 0  # a search page or a read: what it brings decides the next requests
    BULK = 1  # an attachment: nothing waits for it


class AdaptiveLimiter:
    """Requests in flight kept within an AIMD limit that reacts to throttling; a free slot goes
    to the waiting request of the highest priority (then the longest waiting)."""

    def __init__(self, bounds: ConcurrencyBounds) -> None:
        self.control = AdaptiveConcurrency(bounds)
        self._in_flight = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority = Priority.CHAIN) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._in_flight -= 1
            self._grant()

    async def _acquire(self, priority: Priority) -> None:
        if not self._waiters and self._free():
            self._in_flight += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), granted))
        self._grant()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._in_flight -= 1  # granted just as it was cancelled: pass the slot on
                self._grant()
            raise

    def _free(self) -> bool:
        return (
            self.control.pause_remaining(time.monotonic()) <= 0
            and self._in_flight < self.control.limit
        )

    def _grant(self) -> None:
        while self._waiters:
            pause = self.control.pause_remaining(time.monotonic())
            if pause > 0:
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(pause, self._resume)
                return
            if self._in_flight >= self.control.limit:
                return
            _, _, granted = heapq.heappop(self._waiters)
            if granted.done():  # its waiter was cancelled
                continue
            self._in_flight += 1
            granted.set_result(None)

    def _resume(self) -> None:
        self._timer = None
        self._grant()

    def record(self, status: int | None, retry_after: float | None) -> None:
        self.control.on_response(status, time.monotonic(), retry_after)
        self._grant()  # the limit may have grown


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; build it once per process, not per export.
    return ssl.create_default_context()


def load_tls_context() -> None:
    """Build the crawl's TLS context (the system's CA bundle: ~60 ms here) now rather than in a
    process's first export; blocking, so a worker calls it in a thread as it starts."""
    _tls_context()


def crawl_client(base_url: str, access: OutboundAccess) -> httpx.AsyncClient:
    """The client one crawl sends through: the FHIR base trusted, every other URL guarded."""
    # Large bodies (attachments) are read by the stdlib client in a thread (`bulk_body`).
    inner = access.transport or BulkBodyTransport(ssl_context=_tls_context())
    transport = GuardedTransport(
        allow_private=access.allow_private,
        refuse_metadata=True,
        remedy=OFF_BASE_REMEDY,
        trusted_bases=[base_url],
        max_response_bytes=access.max_off_base_bytes,
        resolver=access.resolver,
        inner=inner,
    )
    return _CookielessClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=access.timeout_seconds,
        headers={"User-Agent": f"ehiconnect/{__version__}"},
    )


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None  # what the response sets is not kept


class _CookielessClient(httpx.AsyncClient):
    """httpx's client without a cookie jar. A FHIR API is reached with the patient's bearer
    token, never a session cookie: keeping what a health system sets would only carry state from
    one request of the crawl to the next (and to the host's other URLs) that nothing needs, and
    httpx reads each response's headers into its jar through urllib's cookie machinery (6 % of
    the crawl's event-loop time for hugo, py-spy)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._none_kept: httpx.Cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none_kept

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._none_kept = _NoCookies()  # whatever is given: none kept, none sent


class FhirSession:
    """`async with FhirSession(...) as session:` — its client lives as long as the block."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        access: OutboundAccess,
        policy: RetryPolicy,
        limiter: AdaptiveLimiter,
        clock: Clock,
        deadline: dt.datetime,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._access = access
        self._http: httpx.AsyncClient | None = None
        self.base_url = base_url.rstrip("/") + "/"
        self._capability_url = self.base_url + "metadata"
        self._base = httpx.URL(self.base_url)  # parsed once, not once per request
        self.host = urlsplit(self.base_url).hostname or "unknown"  # a metric label, not the URL
        self._token = token
        self.policy = policy
        self.limiter = limiter
        self.clock = clock
        self.deadline = deadline
        self._rng = rng
        self.requests = 0
        self.retries = 0
        self._renewal = asyncio.Lock()
        self._newest_token: str | None = None  # the last one read or renewed
        self._token_read_at = float("-inf")
        self._token_read: asyncio.Future[str] | None = None

    async def __aenter__(self) -> FhirSession:
        self._http = crawl_client(self.base_url, self._access)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("use the session inside `async with FhirSession(...)`")
        return self._http

    def absolute(self, url: str) -> str:
        return urljoin(self.base_url, url)

    async def _current_token(self) -> str:
        """The token to send: read again (and refreshed when due) at most every
        `TOKEN_REUSE_SECONDS`; a 401 renews it at once. Each read is a database transaction,
        taken while the request holds its slot; the requests that find it due while it runs
        (the first ones of a crawl, sent together) share it instead of each reading again."""
        if (
            self._newest_token is not None
            and time.monotonic() - self._token_read_at < TOKEN_REUSE_SECONDS
        ):
            return self._newest_token
        if self._token_read is None:  # one read at a time: the requests due meanwhile share it
            self._token_read = asyncio.ensure_future(self._read_token())
        return await asyncio.shield(self._token_read)

    async def _read_token(self) -> str:
        try:
            token = await self._token(None)
            self._newest_token, self._token_read_at = token, time.monotonic()
            return token
        finally:
            self._token_read = None

    def check_deadline(self) -> None:
        if self.clock.now() >= self.deadline:
            raise DeadlineExceeded

    async def get_json(self, url: str) -> dict[str, Any]:
        """GET a FHIR JSON resource or Bundle, with retries; FetchError when it cannot be had."""
        target = self.absolute(url)
        parsed: list[dict[str, Any]] = []

        def accept(body: bytes) -> bool:
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError:
                return False
            if not isinstance(value, dict):
                return False
            parsed.append(value)
            return True

        # The body is read by `bulk_body`'s thread, in one hop for up to 1.5 MiB: a search page
        # of hundreds of KiB read by httpx takes 64 KiB event-loop reads, each waiting its turn
        # behind the crawl's other work, and the next page waits for the last of them.
        async with self._attempts(
            target,
            # Only what `BoundedBody` inflates within its limit (httpx would add br or zstd
            # when their packages are installed, and inflate each chunk whole).
            {"Accept": "application/fhir+json", "Accept-Encoding": ACCEPT_ENCODING},
            accept=accept,
            extensions={BULK_BODY: True},
        ):
            pass
        return parsed[-1]

    async def download(self, url: str, sink: AttachmentSink) -> str | FetchError:
        """An attachment into `sink`, restarted when its body breaks off (`fetch_attachment`)."""
        return await fetch_attachment(self, url, sink)

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[httpx.Response]:
        """A streaming GET (attachments); the caller reads `aiter_bytes`.

        Reading may raise `TargetRefused` (ResponseTooLarge) for a response from outside the base.
        """
        async with self._attempts(
            self.absolute(url),
            {"Accept": "*/*", "Accept-Encoding": "identity"},
            stream=True,
            extensions={BULK_BODY: True},
            priority=Priority.BULK,
        ) as response:
            yield response

    async def _unaccepted(
        self, url: str, response: httpx.Response, accept: Callable[[bytes], bool]
    ) -> str | None:
        """None when `accept` takes the 200's body; else why not (it broke off, is garbled or
        is not FHIR JSON: worth a retry), the response closed. Past the JSON limit: FetchError."""
        try:
            body = await _body_within(response, self._access.max_json_bytes)
        except httpx.HTTPError as exc:
            problem = f"the body broke off ({type(exc).__name__})"
        except BodyUndecodable as exc:
            problem = str(exc)
        except BodyTooLarge:
            await response.aclose()
            # Seen by the operator too (the error report goes to the customer): the host and the
            # limit, not the URL (a search's parameters name the patient).
            log.warning(
                "a FHIR JSON response larger than exports.max_json_response_bytes was refused",
                extra={"host": self.host, "limit": self._access.max_json_bytes},
            )
            raise FetchError(
                url,
                200,
                f"the response is larger than the {self._access.max_json_bytes:,}-byte limit "
                "for a FHIR JSON response; if the health system's pages or resources are this "
                "large, raise exports.max_json_response_bytes",
                issue="too-costly",
            ) from None
        else:
            if accept(body):
                return None
            problem = "the body is not a valid FHIR JSON object"
        await response.aclose()
        return problem

    @contextlib.asynccontextmanager
    async def _attempts(
        self,
        url: str,
        headers: dict[str, str],
        *,
        stream: bool = False,
        accept: Callable[[bytes], bool] | None = None,
        extensions: dict[str, Any] | None = None,
        priority: Priority = Priority.CHAIN,
    ) -> AsyncIterator[httpx.Response]:
        """Send until a 200 whose body `accept` takes (a torn or garbled body is retried)."""
        # Parsed once, by the parser that sends it: the token check and the request see the
        # same URL (and a URL httpx cannot parse is refused by `build_request` as before).
        target: httpx.URL | str
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            target = url
        with_token = is_under_base(target, self._base)
        # The CapabilityStatement is public (SMART on FHIR reads it before any authorization): it
        # is asked for without the token, so the crawl's first round trip does not wait for the
        # token's read (a database transaction, a refresh when one is due). A server that wants
        # a token for it (401 or 403) is asked again with one.
        anonymous = with_token and url == self._capability_url
        attempt = 0
        renewals = 0
        rejected: str | None = None
        while True:
            self.check_deadline()
            request_headers = dict(headers)
            used = ""
            status: int | None = None
            retry_after: str | None = None
            problem = ""
            async with self.limiter.slot(priority):
                if with_token and not anonymous:
                    # Taken once a slot is free, so the token is the newest when it is sent (a
                    # crawl has many requests waiting for a slot).
                    if rejected is None:
                        used = await self._current_token()
                    else:
                        # One renewal at a time from this crawl: the others wait here, not each
                        # holding a database connection while the first holds the lock.
                        async with self._renewal:
                            if rejected == self._newest_token:
                                # This request's own renewal (not one another request already
                                # made while it waited): those are what the budget counts.
                                renewals += 1
                                if renewals > MAX_TOKEN_RENEWALS:
                                    raise FetchError(
                                        url,
                                        401,
                                        f"HTTP 401 after {MAX_TOKEN_RENEWALS} renewed tokens; "
                                        "HTTP 401 is not transient",
                                    )
                            used = await self._token(rejected)
                            self._newest_token = used
                            self._token_read_at = time.monotonic()
                    rejected = None
                    request_headers["Authorization"] = f"Bearer {used}"
                self.requests += 1
                try:
                    request = self.http.build_request(
                        "GET", target, headers=request_headers, extensions=extensions
                    )
                    response = await self.http.send(request, stream=True)
                except TargetRefused as exc:
                    raise FetchError(url, None, str(exc), refused=True) from None
                except httpx.HTTPError as exc:
                    problem = f"no response ({type(exc).__name__})"
                    self.limiter.record(None, None)
                    metrics.crawl_response(self.host, None, None, self.limiter.control.limit)
                else:
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                    self.limiter.record(status, _seconds(retry_after))
                    metrics.crawl_response(
                        self.host, status, _seconds(retry_after), self.limiter.control.limit
                    )
                    if status == 200:
                        refused = None
                        if accept is not None and not stream:
                            refused = await self._unaccepted(url, response, accept)
                        if refused is None:
                            try:
                                yield response
                            finally:
                                await response.aclose()
                            return
                        problem = refused
                        status = None  # treated as transient: a retry usually fixes it
                    else:
                        problem = f"HTTP {status}"
                        await _drain(response)
                        await response.aclose()
            if anonymous and status in (401, 403):
                anonymous = False
                continue
            if status == 401 and with_token:
                rejected = used  # renewed unless another request already did
                continue
            attempt += 1
            decision = self.policy.decide(
                attempt=attempt,
                status=status,
                retry_after=retry_after,
                now=self.clock.now(),
                random=self._rng,
            )
            if not decision.retry:
                raise FetchError(url, status, f"{problem}; {decision.reason}")
            self.retries += 1
            metrics.crawl_retry(self.host)
            log.info(
                "retrying a FHIR request",
                extra={
                    "status": status,
                    "attempt": attempt,
                    "delay": round(decision.delay_seconds, 2),
                },
            )
            await asyncio.sleep(decision.delay_seconds)


async def _body_within(response: httpx.Response, limit: int) -> bytes:
    """The body, decoded; `BodyTooLarge`, having read no more, once it passes `limit` bytes (or
    declares it will, uncompressed), never holding more (`http.bounded_body`)."""
    if response.is_stream_consumed:  # handed over whole, already decoded (a test's transport)
        if len(response.content) > limit:
            raise BodyTooLarge
        return response.content
    encoding = response.headers.get("content-encoding")
    plain = (encoding or "identity").strip().lower() == "identity"
    declared = response.headers.get("content-length", "")
    if plain and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = BoundedBody(encoding, limit)
    async for chunk in response.aiter_raw():
        body.feed(chunk)
    return body.result()


async def _drain(response: httpx.Response) -> None:
    """Read a refusal's body so that its connection can serve again, up to `ERROR_BODY_BYTES`:
    a longer one is left unread (its connection is then closed, not kept), and one that breaks
    off changes nothing (the status is what counts)."""
    if response.is_stream_consumed:  # handed over whole (a test's transport)
        return
    with contextlib.suppress(httpx.HTTPError, TargetRefused):
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > ERROR_BODY_BYTES:
                return


def _seconds(retry_after: str | None) -> float | None:
    if retry_after is None:
        return None
    try:
        return float(retry_after)
    except ValueError:
        return None
