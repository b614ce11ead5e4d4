"""Guards at the edge of every web app we serve (platform, tracker, sandbox), as pure ASGI.

They run before any route, so no feature sees input they refuse:

- `UrlGuard`: a path or query string holding a control character (NUL and the rest of C0, DEL)
  or bytes that are not UTF-8, once percent-decoded, is a 400. Such values have no meaning in a
  URL and PostgreSQL refuses NUL in text, which turned them into 500s deep inside a route.
- `BodyLimit`: a request body larger than a limit is a 413, refused from `Content-Length` before
  a byte is read and counted while it streams (chunked bodies have no length). A `before_body`
  hook runs when the app first asks for the body, so a private route can authenticate the caller
  from its headers and refuse without reading the body.
- `SecurityHeaders`: `nosniff` and `no-referrer` on every response; HTML pages may not be framed.

Pure ASGI rather than Starlette's `BaseHTTPMiddleware`, so a limit wraps `receive` itself and
streamed responses pass through unbuffered. Each guard answers with a `Refuse` the app provides:
the platform's envelope, or a FHIR OperationOutcome on FHIR paths.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Refuse = Callable[[Scope, int, str, str], Response]
"""The answer to a refused request: `(scope, status, code, description) -> response`."""

BeforeBody = Callable[[Scope], Awaitable[Response | None]]
"""Called once, when the app first reads a request that has a body; a response refuses it."""

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FHIR_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 413: "too-long"}


def envelope_refusal(scope: Scope, status: int, code: str, description: str) -> Response:
    """`{"success": false, "error", "error_description"}`: the JSON routes' error shape."""
    return JSONResponse(
        {"success": False, "error": code, "error_description": description}, status_code=status
    )


def outcome_refusal(scope: Scope, status: int, code: str, description: str) -> Response:
    """A FHIR OperationOutcome with one issue: how FHIR routes answer errors."""
    issue = {
        "severity": "error",
        "code": _FHIR_ISSUE_CODES.get(status, "processing"),
        "diagnostics": description,
    }
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [issue]},
        status_code=status,
        media_type="application/fhir+json",
    )


def refuse_by_path(fhir_path: Callable[[str], bool], default: Refuse) -> Refuse:
    """An OperationOutcome where `fhir_path(path)` holds, `default` elsewhere."""

    def refuse(scope: Scope, status: int, code: str, description: str) -> Response:
        chosen = outcome_refusal if fhir_path(scope.get("path", "")) else default
        return chosen(scope, status, code, description)

    return refuse


def path_under(prefix: str) -> Callable[[str], bool]:
    """A path predicate: `prefix` itself or anything below it."""
    return lambda path: path == prefix or path.startswith(prefix.rstrip("/") + "/")


def edge_middleware(*, max_body_bytes: int, refuse: Refuse) -> list[Middleware]:
    """The guards of a Starlette app, outermost first (`Starlette(middleware=...)`)."""
    return [
        Middleware(SecurityHeaders),
        Middleware(UrlGuard, refuse=refuse),
        Middleware(BodyLimit, max_bytes=max_body_bytes, refuse=refuse),
    ]


def url_problem(raw_path: bytes, query_string: bytes) -> str | None:
    """What is wrong with a request target, or None; never quotes the value (it may be a code)."""
    parts = (("path", raw_path), ("query string", query_string.replace(b"+", b" ")))
    for name, raw in parts:
        decoded = unquote_to_bytes(raw)
        if _CONTROL.search(decoded):
            return (
                f"the URL's {name} holds a control character (such as %00) once "
                "percent-decoded; remove it and resend"
            )
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return (
                f"the URL's {name} is not UTF-8 once percent-decoded; percent-encode the "
                "UTF-8 bytes of the text"
            )
    return None


def accepted_request_id(given: str | None) -> str:
    """The client's `x-request-id` when short and plain, else a fresh one (it is logged/echoed)."""
    if given is not None and _PLAIN_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class UrlGuard:
    """400 for a path or query string with control characters or non-UTF-8 bytes."""

    def __init__(self, app: ASGIApp, *, refuse: Refuse) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            problem = url_problem(raw_path, scope.get("query_string", b""))
            if problem is not None:
                await self.refuse(scope, 400, "invalid_request", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over `max_bytes`, before it is read whole; see `BeforeBody`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        refuse: Refuse,
        before_body: BeforeBody | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refuse = refuse
        self.before_body = before_body

    def too_large(self, scope: Scope) -> Response:
        return self.refuse(
            scope,
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes, the most this server "
            "accepts; send less",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _content_length(headers)
        if declared is not None and declared > self.max_bytes:
            await self.too_large(scope)(scope, receive, send)
            return
        has_body = bool(declared) or "transfer-encoding" in headers
        await _GuardedExchange(self, scope, receive, send, has_body).run()


class _Refused(HTTPException):
    """Raised into the app from `receive` once its request is refused.

    An HTTPException, so apps treat it as a client error (no error log, no traceback); what they
    answer to it is replaced by the refusal.
    """


class _GuardedExchange:
    """One request under a `BodyLimit`.

    A refusal decided while the app reads is raised into the app; whatever the app answers to
    that is dropped and the refusal is sent instead (unless the app had already started its
    response, which then fails as a broken request would).
    """

    def __init__(
        self, guard: BodyLimit, scope: Scope, receive: Receive, send: Send, has_body: bool
    ) -> None:
        self.guard = guard
        self.scope = scope
        self._receive = receive
        self._send = send
        self.check_first = has_body and guard.before_body is not None
        self.received = 0
        self.refusal: Response | None = None
        self.failure: Exception | None = None
        self.started = False

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise _Refused(self.refusal.status_code)
        if self.failure is not None:
            raise _Refused(500)
        if self.check_first:
            self.check_first = False
            assert self.guard.before_body is not None
            try:
                self.refusal = await self.guard.before_body(self.scope)
            except Exception as exc:  # re-raised once the app has unwound, as the app's error
                self.failure = exc
            if self.refusal is not None:
                raise _Refused(self.refusal.status_code)
            if self.failure is not None:
                raise _Refused(500)
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.guard.max_bytes:
                self.refusal = self.guard.too_large(self.scope)
                raise _Refused(413)
        return message

    async def send(self, message: Message) -> None:
        if not self.started and (self.refusal is not None or self.failure is not None):
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def run(self) -> None:
        try:
            await self.guard.app(self.scope, self.receive, self.send)
        except Exception:
            if self.started or (self.refusal is None and self.failure is None):
                raise
        if self.failure is not None:
            raise self.failure
        if self.refusal is not None and not self.started:
            await self.refusal(self.scope, self._receive, self._send)


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


class SecurityHeaders:
    """`nosniff` and `no-referrer` on every response; HTML pages also refuse to be framed.

    Headers a route set itself win; a page whose own Content-Security-Policy names no frame
    ancestors gets a second policy, `frame-ancestors 'none'`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(headers: MutableHeaders) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if not headers.get("content-type", "").lower().startswith("text/html"):
        return
    headers.setdefault("X-Frame-Options", "DENY")
    # A second policy is enforced beside the page's own, so appending one cannot weaken it.
    if not any("frame-ancestors" in p for p in headers.getlist("content-security-policy")):
        headers.append("Content-Security-Policy", "frame-ancestors 'none'")
