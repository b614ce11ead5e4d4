"""The edge guards as plain ASGI callables: driven in-process, no server, no network."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from ehiconnect.api.ratelimit import client_key
from ehiconnect.http.asgi_guards import (
    BodyLimit,
    UrlGuard,
    accepted_request_id,
    add_security_headers,
    envelope_refusal,
    outcome_refusal,
    path_under,
    refuse_by_path,
    url_problem,
)
from ehiconnect.settings import ApiSettings


def _scope(
    path: str = "/",
    *,
    raw_path: bytes | None = None,
    query: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }


async def _call(app: Any, scope: Scope, chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Drive `app` with a body sent in `chunks`; the status and JSON body it answered."""
    pending: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], json.loads(body)


class _Echo:
    """An app that reads the whole body, then answers its length; records whether it ran."""

    def __init__(self) -> None:
        self.read: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await Request(scope, receive).body()
        self.read = len(body)
        await JSONResponse({"length": len(body)})(scope, receive, send)


@pytest.mark.parametrize(
    ("raw_path", "query"),
    [
        (b"/v1/bridge/org", b"public_id=public_test_a%00"),
        (b"/v1/webhooks/events", b"type=a%00"),
        (b"/v1/webhooks/endpoints/ab%00cd/disable", b""),
        (b"/fhir/Observation", b"x=%00"),
        (b"/fhir/Observation", b"code=a%0Ab"),
        (b"/fhir/Observation", b"code=a%7Fb"),
        (b"/v1/bridge/org", b"public_id=%FF%FE"),
        (b"/v1/%C3", b""),
    ],
)
def test_control_characters_and_bad_utf8_in_a_url_are_named_without_the_value(
    raw_path: bytes, query: bytes
) -> None:
    problem = url_problem(raw_path, query)
    assert problem is not None
    assert "path" in problem or "query string" in problem
    assert "public_test" not in problem


@pytest.mark.parametrize(
    ("raw_path", "query"),
    [
        (b"/v1/bridge/org", b"public_id=public_test_abc&api_mode=test"),
        (b"/v1/bridge/catalog", b"q=Sa%C3%BAde+Bom&x=%26%3D"),
        (b"/fhir/Patient/%E6%82%A3%E8%80%85", b""),
        (b"/", b""),
    ],
)
def test_plain_and_utf8_urls_pass(raw_path: bytes, query: bytes) -> None:
    assert url_problem(raw_path, query) is None


async def test_url_guard_refuses_before_the_app_runs() -> None:
    inner = _Echo()
    guard = UrlGuard(inner, refuse=envelope_refusal)
    status, body = await _call(guard, _scope("/v1/bridge/org", query=b"public_id=a%00"), [])
    assert status == 400
    assert body["success"] is False
    assert body["error"] == "invalid_request"
    assert inner.read is None


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    inner = _Echo()
    guard = BodyLimit(inner, max_bytes=100, refuse=envelope_refusal)
    scope = _scope(headers={"content-length": "101"})
    status, body = await _call(guard, scope, [b"x" * 101])
    assert (status, body["error"]) == (413, "payload_too_large")
    assert "100 bytes" in body["error_description"]
    assert inner.read is None


async def test_a_streamed_body_is_refused_once_it_passes_the_limit() -> None:
    inner = _Echo()
    guard = BodyLimit(inner, max_bytes=100, refuse=envelope_refusal)
    scope = _scope(headers={"transfer-encoding": "chunked"})
    status, body = await _call(guard, scope, [b"x" * 60, b"x" * 60, b"x" * 60])
    assert (status, body["error"]) == (413, "payload_too_large")
    assert inner.read is None  # the app never got the body


async def test_a_body_at_the_limit_reaches_the_app() -> None:
    inner = _Echo()
    guard = BodyLimit(inner, max_bytes=100, refuse=envelope_refusal)
    scope = _scope(headers={"transfer-encoding": "chunked"})
    assert await _call(guard, scope, [b"x" * 50, b"x" * 50]) == (200, {"length": 100})


async def test_before_body_refuses_without_reading_the_body() -> None:
    received: list[Message] = []

    async def refuse_unless_key(scope: Scope) -> Response | None:
        return envelope_refusal(scope, 401, "unauthorized", "send a key")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await JSONResponse({"read": True})(scope, receive, send)

    guard = BodyLimit(app, max_bytes=100, refuse=envelope_refusal, before_body=refuse_unless_key)
    status, body = await _call(guard, _scope(headers={"content-length": "2"}), [b"{}"])
    assert (status, body["error"]) == (401, "unauthorized")
    assert received == []


async def test_before_body_is_not_asked_about_requests_without_a_body() -> None:
    asked: list[Scope] = []

    async def before(scope: Scope) -> Response | None:
        asked.append(scope)
        return None

    guard = BodyLimit(_Echo(), max_bytes=100, refuse=envelope_refusal, before_body=before)
    assert await _call(guard, _scope(), []) == (200, {"length": 0})
    assert asked == []
    assert await _call(guard, _scope(headers={"content-length": "2"}), [b"ab"]) == (
        200,
        {"length": 2},
    )
    assert len(asked) == 1


async def test_a_failing_before_body_check_is_the_apps_error_not_a_refusal() -> None:
    async def broken(scope: Scope) -> Response | None:
        raise RuntimeError("database down")

    guard = BodyLimit(_Echo(), max_bytes=100, refuse=envelope_refusal, before_body=broken)
    with pytest.raises(RuntimeError, match="database down"):
        await _call(guard, _scope(headers={"content-length": "2"}), [b"{}"])


async def test_refusals_take_the_shape_of_the_path() -> None:
    refuse = refuse_by_path(path_under("/fhir"), envelope_refusal)
    fhir = refuse(_scope("/fhir/Observation"), 400, "invalid_request", "no NUL")
    assert fhir.media_type == "application/fhir+json"
    outcome = json.loads(bytes(fhir.body))
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "invalid"
    assert outcome["issue"][0]["diagnostics"] == "no NUL"
    other = refuse(_scope("/fhirish"), 400, "invalid_request", "no NUL")
    assert json.loads(bytes(other.body))["error"] == "invalid_request"
    too_long = outcome_refusal(_scope("/fhir"), 413, "payload_too_large", "smaller")
    assert json.loads(bytes(too_long.body))["issue"][0]["code"] == "too-long"


def _headers(pairs: dict[str, str]) -> MutableHeaders:
    return MutableHeaders(raw=[(k.lower().encode(), v.encode()) for k, v in pairs.items()])


def test_every_response_gets_nosniff_and_no_referrer() -> None:
    headers = _headers({"content-type": "application/json"})
    add_security_headers(headers)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "x-frame-options" not in headers
    assert "content-security-policy" not in headers


def test_html_pages_may_not_be_framed() -> None:
    headers = _headers({"content-type": "text/html; charset=utf-8"})
    add_security_headers(headers)
    assert headers["x-frame-options"] == "DENY"
    assert headers.getlist("content-security-policy") == ["frame-ancestors 'none'"]


def test_a_pages_own_policy_is_kept_and_framing_refused_beside_it() -> None:
    own = "default-src 'none'; script-src 'sha256-abc'"
    headers = _headers({"content-type": "text/html", "content-security-policy": own})
    add_security_headers(headers)
    assert headers.getlist("content-security-policy") == [own, "frame-ancestors 'none'"]
    framed = "frame-ancestors https://app.example"
    headers = _headers({"content-type": "text/html", "content-security-policy": framed})
    add_security_headers(headers)
    assert headers.getlist("content-security-policy") == [framed]


@pytest.mark.parametrize("given", ["abc-123", "A.b_C-9", "x" * 64, "0f" * 16])
def test_a_plain_request_id_is_kept(given: str) -> None:
    assert accepted_request_id(given) == given


@pytest.mark.parametrize("given", [None, "", "x" * 65, "a b", "a\tb", "<script>", "ünï", "a,b"])
def test_any_other_request_id_is_replaced(given: str | None) -> None:
    replaced = accepted_request_id(given)
    assert replaced != given
    assert len(replaced) == 32
    assert int(replaced, 16) >= 0


def test_ipv6_clients_share_a_rate_limit_bucket_per_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key("203.0.113.7") != client_key("203.0.113.8")
    assert client_key("not-an-address") == "not-an-address"


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR network"):
        ApiSettings(trusted_proxies=["proxy.internal"])
    assert ApiSettings(trusted_proxies=["10.0.0.0/8", "::1"]).trusted_proxies == [
        "10.0.0.0/8",
        "::1",
    ]
    assert ApiSettings().trusted_proxies == []
