"""The crawler's side of the SSRF guard: what is under a FHIR base, and what goes out unchecked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ehiconnect.http import ssrf
from ehiconnect.http.ssrf import ResponseTooLarge, TargetRefused

BASE = "https://ehr.example.org/fhir/r4"


@pytest.mark.parametrize(
    "url",
    [
        "https://ehr.example.org/fhir/r4",
        "https://ehr.example.org/fhir/r4/",
        "https://ehr.example.org/fhir/r4/Binary/abc",
        "https://ehr.example.org/fhir/r4?_getpages=xyz&_count=10",
        "https://EHR.Example.ORG/fhir/r4/Patient/1",  # host names are case-insensitive
        "https://ehr.example.org:443/fhir/r4/Patient/1",  # the default port written out
        "https://ehr.example.org/fhir/r4/Patient/1/$everything?_count=200",
    ],
)
def test_urls_under_the_base(url: str) -> None:
    assert ssrf.is_under_base(url, BASE)
    assert ssrf.is_under_base(url, BASE + "/")


@pytest.mark.parametrize(
    "url",
    [
        "https://ehr.example.org.evil.com/fhir/r4/Binary/abc",  # a longer host
        "https://evil.com/ehr.example.org/fhir/r4/Binary/abc",
        "https://ehr.example.org@evil.com/fhir/r4/Binary/abc",  # userinfo: the host is evil.com
        "https://user:pw@ehr.example.org/fhir/r4/Binary/abc",  # userinfo on the right host
        "https://ehr.example.org:8443/fhir/r4/Binary/abc",  # another port
        "http://ehr.example.org/fhir/r4/Binary/abc",  # another scheme
        "http://ehr.example.org:443/fhir/r4/Binary/abc",  # the port, but not the scheme
        "https://ehr.example.org/fhir/r4evil/Binary/abc",  # a path that only starts alike
        "https://ehr.example.org/fhir/Binary/abc",  # above the base
        "https://ehr.example.org/fhir/r4/../admin",  # normalised to /fhir/admin
        "https://ehr.example.org/fhir/r4/%2e%2e/admin",  # an encoded climb a server may decode
        "https://ehr.example.org/fhir/r4/%2F%2Fevil.com",
        "https://ehr.example.org/fhir/r4/..%5cadmin",
        "https://ehr.example.org./fhir/r4/Binary/abc",  # a trailing dot is another name here
        "not a url at all",
        "/fhir/r4/Binary/abc",  # relative: the caller resolves it first
    ],
)
def test_look_alikes_are_not_under_the_base(url: str) -> None:
    assert not ssrf.is_under_base(url, BASE)


def test_a_base_at_the_root_covers_its_host() -> None:
    assert ssrf.is_under_base("https://ehr.example.org/Patient/1", "https://ehr.example.org")
    assert not ssrf.is_under_base("https://ehr.example.org:1/Patient/1", "https://ehr.example.org")


def resolver_for(table: dict[str, list[str]]) -> ssrf.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


DNS = resolver_for(
    {
        "ehr.internal": ["10.1.2.3"],
        "files.example.com": ["93.184.215.14"],
        "metadata.example.com": ["169.254.169.254"],
    }
)


async def test_private_allowed_still_refuses_metadata_when_asked() -> None:
    addresses = await ssrf.resolve_target(
        "http://ehr.internal/x", allow_private=True, refuse_metadata=True, resolver=DNS
    )
    assert [str(a) for a in addresses] == ["10.1.2.3"]
    for url in (
        "http://169.254.169.254/latest/",
        "http://metadata.example.com/",
        "http://[::ffff:169.254.169.254]/",
    ):
        with pytest.raises(TargetRefused, match="metadata"):
            await ssrf.resolve_target(url, allow_private=True, refuse_metadata=True, resolver=DNS)


async def test_a_refusal_ends_with_the_callers_remedy() -> None:
    with pytest.raises(TargetRefused, match=r"private address\. Ask the operator\.$"):
        await ssrf.resolve_target(
            "http://ehr.internal/", allow_private=False, resolver=DNS, remedy="Ask the operator."
        )


class Chunks(httpx.AsyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


class Recorder:
    """An inner transport that records what would have been sent."""

    def __init__(self, headers: dict[str, str] | None = None, chunks: int = 1) -> None:
        self.sent: list[httpx.Request] = []
        self.headers = headers or {}
        self.chunks = chunks

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.url.path == "/hop":
            return httpx.Response(302, headers={"location": "http://ehr.internal/secret"})
        return httpx.Response(200, headers=self.headers, stream=Chunks(*[b"x" * 64] * self.chunks))


def crawl_like_client(
    inner: Recorder, *, follow: bool = False, max_bytes: int | None = None
) -> httpx.AsyncClient:
    transport = ssrf.GuardedTransport(
        allow_private=False,
        refuse_metadata=True,
        trusted_bases=["http://ehr.internal/fhir"],
        resolver=DNS,
        inner=httpx.MockTransport(inner),
        max_response_bytes=max_bytes,
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=follow)


async def test_the_trusted_base_goes_out_unchanged_and_the_rest_is_checked() -> None:
    inner = Recorder()
    async with crawl_like_client(inner) as client:
        # The configured endpoint lives on a private address: trusted, sent as named.
        assert (await client.get("http://ehr.internal/fhir/Patient/1")).status_code == 200
        # The same host outside the base path is checked like any other URL.
        with pytest.raises(TargetRefused, match=r"10\.1\.2\.3 is a private address"):
            await client.get("http://ehr.internal/admin")
        # A public host elsewhere is pinned to its checked address.
        assert (await client.get("https://files.example.com/doc.pdf")).status_code == 200
    assert [str(r.url) for r in inner.sent] == [
        "http://ehr.internal/fhir/Patient/1",
        "https://93.184.215.14/doc.pdf",
    ]


async def test_each_redirect_hop_is_checked_again() -> None:
    inner = Recorder()
    async with crawl_like_client(inner, follow=True) as client:
        with pytest.raises(TargetRefused, match="private address"):
            await client.get("https://files.example.com/hop")
    assert [str(r.url) for r in inner.sent] == ["https://93.184.215.14/hop"]


async def test_off_base_responses_are_capped_and_asked_for_uncompressed() -> None:
    inner = Recorder(chunks=4)  # 256 bytes
    async with crawl_like_client(inner, max_bytes=200) as client:
        async with client.stream("GET", "https://files.example.com/big") as response:
            with pytest.raises(ResponseTooLarge, match="200-byte limit"):
                await response.aread()
        on_base = await client.get("http://ehr.internal/fhir/Binary/1")  # the base is not capped
    assert inner.sent[0].headers["accept-encoding"] == "identity"
    assert len(on_base.content) == 256

    declared = Recorder(headers={"content-length": "201"})
    async with crawl_like_client(declared, max_bytes=200) as client:
        with pytest.raises(ResponseTooLarge):
            await client.get("https://files.example.com/declared")
