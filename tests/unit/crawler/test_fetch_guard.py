"""FhirSession sends the patient's token only under the FHIR base; every other URL is guarded."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import httpx
import pytest

from ehiconnect.clock import FrozenClock
from ehiconnect.crawler.fetch import (
    AdaptiveLimiter,
    FetchError,
    FhirSession,
    OutboundAccess,
    TokenSource,
)
from ehiconnect.crawler.policy import ConcurrencyBounds, RetryPolicy
from ehiconnect.settings import ExportSettings

BASE = "https://ehr.example.org/fhir"
TOKEN = "patient-token"


async def dns(host: str, port: int) -> list[str]:
    table = {
        "ehr.example.org": ["93.184.215.14"],
        "ehr.example.org.evil.com": ["93.184.215.99"],
        "files.example.com": ["93.184.215.15"],
        "intranet.example.com": ["10.0.0.7"],
    }
    if host not in table:
        raise OSError(f"no such host {host}")
    return table[host]


class Server:
    """Answers every request with a small JSON object; records (url, Authorization)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((str(request.url), request.headers.get("authorization")))
        return httpx.Response(200, json={"resourceType": "Bundle"})


def session(
    server: Callable[[httpx.Request], httpx.Response],
    *,
    allow_private: bool = False,
    token: TokenSource | None = None,
    max_attempts: int = 3,
) -> FhirSession:
    async def the_token(rejected: str | None) -> str:
        return TOKEN

    clock = FrozenClock()
    return FhirSession(
        BASE,
        token or the_token,
        access=OutboundAccess(
            allow_private=allow_private,
            timeout_seconds=5,
            max_off_base_bytes=1 << 20,
            max_json_bytes=ExportSettings().max_json_response_bytes,
            resolver=dns,
            transport=httpx.MockTransport(server),
        ),
        policy=RetryPolicy(max_attempts=max_attempts, base_seconds=0, cap_seconds=0),
        limiter=AdaptiveLimiter(ConcurrencyBounds(minimum=1, maximum=2, initial=2)),
        clock=clock,
        deadline=clock.now() + dt.timedelta(hours=1),
    )


async def test_the_token_goes_only_under_the_base() -> None:
    server = Server()
    async with session(server) as fhir:
        await fhir.get_json("Patient/1")
        await fhir.get_json(f"{BASE}/Observation?patient=1&page=2")
        await fhir.get_json("https://ehr.example.org.evil.com/fhir/Observation?page=3")
        async with fhir.stream("https://files.example.com/doc.pdf") as response:
            await response.aread()
    assert server.seen == [
        (f"{BASE}/Patient/1", f"Bearer {TOKEN}"),
        (f"{BASE}/Observation?patient=1&page=2", f"Bearer {TOKEN}"),
        # Off the base: pinned to the checked address, and no token.
        ("https://93.184.215.99/fhir/Observation?page=3", None),
        ("https://93.184.215.15/doc.pdf", None),
    ]


async def test_a_refused_url_is_a_fetch_error_sent_once_to_no_one() -> None:
    server = Server()
    async with session(server) as fhir:
        for url in ("http://intranet.example.com/x", "http://169.254.169.254/latest/meta-data/"):
            with pytest.raises(FetchError) as caught:
                await fhir.get_json(url)
            assert caught.value.refused
            assert caught.value.status is None
            assert "--allow-private-network" in caught.value.detail
    assert server.seen == []
    assert fhir.retries == 0


async def test_an_endpoint_on_a_private_network_may_reach_it_but_never_metadata() -> None:
    server = Server()
    async with session(server, allow_private=True) as fhir:
        await fhir.get_json("http://intranet.example.com/x")
        with pytest.raises(FetchError, match="cloud metadata"):
            await fhir.get_json("http://169.254.169.254/latest/meta-data/")
    assert server.seen == [("http://10.0.0.7/x", None)]


async def test_the_session_has_no_client_outside_its_block() -> None:
    fhir = session(Server())
    with pytest.raises(RuntimeError, match="async with"):
        await fhir.get_json("Patient/1")


async def test_requests_sent_together_share_one_read_of_the_token() -> None:
    server, reads = Server(), 0

    async def token(rejected: str | None) -> str:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)  # a database transaction
        return TOKEN

    async with session(server, token=token) as fhir:
        await asyncio.gather(fhir.get_json("Condition?patient=1"), fhir.get_json("Patient/1"))
        assert reads == 1
        await fhir.get_json("Observation?patient=1")  # within TOKEN_REUSE_SECONDS: no read
    assert reads == 1
    assert [auth for _, auth in server.seen] == [f"Bearer {TOKEN}"] * 3


async def test_the_capability_statement_is_asked_for_without_the_token() -> None:
    server = Server()
    async with session(server) as fhir:
        await fhir.get_json("metadata")
        await fhir.get_json(f"{BASE}/metadata?_summary=true")
    assert server.seen == [
        (f"{BASE}/metadata", None),
        # Only the CapabilityStatement itself goes without the token.
        (f"{BASE}/metadata?_summary=true", f"Bearer {TOKEN}"),
    ]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_server_that_wants_a_token_for_its_capability_statement_gets_one(
    status: int,
) -> None:
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        authorization = request.headers.get("authorization")
        seen.append(authorization)
        if authorization is None:
            return httpx.Response(status)
        return httpx.Response(200, json={"resourceType": "CapabilityStatement"})

    async def the_token(rejected: str | None) -> str:
        assert rejected is None, "the token was not refused: no renewal"
        return TOKEN

    # One attempt: being asked again with the token is not a retry.
    fhir = session(server, token=the_token, max_attempts=1)
    async with fhir:
        assert await fhir.get_json("metadata") == {"resourceType": "CapabilityStatement"}
    assert seen == [None, f"Bearer {TOKEN}"]
