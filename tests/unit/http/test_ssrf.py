import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest

from ehiconnect.http import ssrf
from ehiconnect.http.ssrf import TargetRefused


def resolver_for(table: dict[str, list[str]]) -> ssrf.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


DNS = resolver_for(
    {
        "hooks.example.com": ["93.184.215.14"],
        "sneaky.example.com": ["127.0.0.1"],
        "metadata.example.com": ["169.254.169.254"],
        "mixed.example.com": ["93.184.215.14", "10.0.0.1"],
        "v6loop.example.com": ["::1"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://sneaky.example.com/hook",
        "https://metadata.example.com/hook",
        "https://mixed.example.com/hook",
        "https://v6loop.example.com/hook",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://192.168.1.10/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://[fd00:ec2::254]/",
        "http://[64:ff9b::a00:1]/",
    ],
)
async def test_live_mode_refuses_internal_targets(url: str) -> None:
    with pytest.raises(TargetRefused, match="refusing to call"):
        await ssrf.resolve_target(url, allow_private=False, resolver=DNS)


async def test_live_mode_accepts_a_public_address() -> None:
    addresses = await ssrf.resolve_target(
        "https://hooks.example.com/x", allow_private=False, resolver=DNS
    )
    assert addresses == [ipaddress.ip_address("93.184.215.14")]


async def test_test_mode_may_call_loopback() -> None:
    addresses = await ssrf.resolve_target(
        "http://sneaky.example.com/x", allow_private=True, resolver=DNS
    )
    assert addresses == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/", "scheme"),
        ("http://user:pw@hooks.example.com/", "user:password"),
        ("http://unknown.example.com/", "cannot resolve"),
    ],
)
async def test_bad_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(TargetRefused, match=message):
        await ssrf.resolve_target(url, allow_private=True, resolver=DNS)


def test_metadata_address_reason_names_it() -> None:
    reason = ssrf.refusal_reason(ipaddress.ip_address("169.254.169.254"))
    assert reason is not None
    assert "metadata" in reason
    assert ssrf.refusal_reason(ipaddress.ip_address("::ffff:8.8.8.8")) is None


async def test_transport_connects_to_the_checked_address_keeping_host_and_sni() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with ssrf.guarded_client(
        allow_private=False,
        timeout_seconds=5,
        resolver=DNS,
        inner=httpx.MockTransport(handler),
    ) as client:
        response = await client.post("https://hooks.example.com:8443/in?x=1", content=b"{}")
    assert response.status_code == 204
    (sent,) = seen
    assert str(sent.url) == "https://93.184.215.14:8443/in?x=1"
    assert sent.headers["host"] == "hooks.example.com:8443"
    assert sent.extensions["sni_hostname"] == "hooks.example.com"


async def test_transport_refuses_before_connecting() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("must not connect")

    async with ssrf.guarded_client(
        allow_private=False, timeout_seconds=5, resolver=DNS, inner=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(TargetRefused):
            await client.get("http://sneaky.example.com/")


class Chunks(httpx.AsyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def test_redirects_are_not_followed_and_bodies_are_capped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/redirect":
            return httpx.Response(
                302, headers={"location": "http://169.254.169.254/"}, stream=Chunks()
            )
        return httpx.Response(200, stream=Chunks(*[b"x" * 64] * 100))

    async with ssrf.guarded_client(
        allow_private=False, timeout_seconds=5, resolver=DNS, inner=httpx.MockTransport(handler)
    ) as client:
        moved = await ssrf.send_capped(
            client,
            client.build_request("POST", "https://hooks.example.com/redirect"),
            max_bytes=100,
            timeout_seconds=5,
        )
        big = await ssrf.send_capped(
            client,
            client.build_request("POST", "https://hooks.example.com/big"),
            max_bytes=100,
            timeout_seconds=5,
        )
    assert moved.status_code == 302
    assert big.body == b"x" * 100
    assert big.truncated
