"""`/widget/*`: the script and stylesheet come from the package, cacheable and revalidatable."""

from __future__ import annotations

import re
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


@pytest.mark.parametrize(
    ("path", "same_as"),
    [
        ("/connect/v4/fasten-stitch-element.js", "ehi-stitch-element.js"),
        ("/connect/v4/fasten-stitch-element.css", "fasten-stitch-element.css"),
        ("/connect/v3/fasten-stitch-element.js", "ehi-stitch-element.js"),
    ],
)
async def test_fastens_cdn_paths_serve_the_widget(
    client: httpx.AsyncClient, path: str, same_as: str
) -> None:
    """A page written for Fasten Connect changes only the script's host (#16)."""
    response = await client.get(path)

    assert response.status_code == 200
    assert response.content == widget_asset(same_as).content
    assert response.headers["content-type"] == widget_asset(same_as).media_type
    assert response.headers["access-control-allow-origin"] == "*"  # loaded as a module script
    assert (await client.head(path)).status_code == 200


async def test_the_script_defines_the_element_under_both_names(client: httpx.AsyncClient) -> None:
    script = (await client.get("/connect/v4/fasten-stitch-element.js")).text
    assert "'ehi-stitch-element', 'fasten-stitch-element'" in script


async def test_fastens_stylesheet_styles_only_the_element(client: httpx.AsyncClient) -> None:
    """Fasten's quickstart links it in the page's <head>: a rule for `button` or `[hidden]` there
    would restyle the customer's own page."""
    css = (await client.get("/connect/v4/fasten-stitch-element.css")).text
    without_comments = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    selectors = {
        selector.strip()
        for block in re.findall(r"([^{}]+)\{", without_comments)
        for selector in block.split(",")
    }
    assert selectors == {"fasten-stitch-element", "ehi-stitch-element"}


async def test_an_unknown_fasten_version_is_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get("/connect/v9/fasten-stitch-element.js")).status_code == 404
