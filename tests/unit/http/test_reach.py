"""One guarded client, a policy per request: `reach(allow_private=...)`."""

from __future__ import annotations

import httpx
import pytest

from ehiconnect.http.ssrf import ALLOW_PRIVATE_EXTENSION, GuardedTransport, TargetRefused, reach

ADDRESSES = {"ehr.internal": "10.1.2.3", "metadata.example": "169.254.169.254"}


async def _resolve(host: str, port: int) -> list[str]:
    return [ADDRESSES[host]]


def _client(sent: list[httpx.Request]) -> httpx.AsyncClient:
    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = GuardedTransport(
        allow_private=False,
        refuse_metadata=True,
        resolver=_resolve,
        inner=httpx.MockTransport(record),
    )
    return httpx.AsyncClient(transport=transport)


async def test_private_addresses_are_refused_unless_the_request_allows_them() -> None:
    sent: list[httpx.Request] = []
    async with _client(sent) as client:
        with pytest.raises(TargetRefused, match=r"10\.1\.2\.3"):
            await client.get("https://ehr.internal/token")
        with pytest.raises(TargetRefused):
            await client.get("https://ehr.internal/token", extensions=reach(allow_private=False))
        assert sent == []
        response = await client.get(
            "https://ehr.internal/token", extensions=reach(allow_private=True)
        )
    assert response.status_code == 200
    [request] = sent
    assert request.url.host == "10.1.2.3"  # connected to the checked address
    assert request.headers["host"] == "ehr.internal"
    assert ALLOW_PRIVATE_EXTENSION not in request.extensions  # ours stays ours


async def test_metadata_addresses_stay_refused_even_when_private_ones_are_allowed() -> None:
    sent: list[httpx.Request] = []
    async with _client(sent) as client:
        with pytest.raises(TargetRefused, match="metadata"):
            await client.get("http://metadata.example/latest", extensions=reach(allow_private=True))
    assert sent == []
