"""`/widget/*`: the script and stylesheet come from the package, cacheable and revalidatable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from ehiconnect.api.routes.widget import router
from ehiconnect.widget import widget_asset


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
        yield client


@pytest.mark.parametrize(
    ("path", "media_type", "marker"),
    [
        ("/widget/ehi-stitch-element.js", "text/javascript", b"customElements.define"),
        ("/widget/ehi-stitch-element.css", "text/css", b":host"),
    ],
)
async def test_assets_are_served_with_type_cache_and_etag(
    client: httpx.AsyncClient, path: str, media_type: str, marker: bytes
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["access-control-allow-origin"] == "*"
    assert marker in response.content
    assert response.headers["etag"] == widget_asset(path.rsplit("/", 1)[1]).etag


async def test_a_matching_etag_gets_304_without_a_body(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/widget/ehi-stitch-element.js")).headers["etag"]

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = await client.get(
            "/widget/ehi-stitch-element.js", headers={"If-None-Match": header}
        )
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag


async def test_a_stale_etag_gets_the_file(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/widget/ehi-stitch-element.css", headers={"If-None-Match": '"stale"'}
    )

    assert response.status_code == 200
    assert b":host" in response.content


async def test_other_widget_paths_are_not_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/widget/callback_page.py")).status_code == 404
    assert (await client.get("/widget/../widget/__init__.py")).status_code == 404
