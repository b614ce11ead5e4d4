"""`/widget/...`: the consent widget's script and stylesheet (DESIGN §1, §3), also at Fasten
Connect's CDN paths `/connect/v4/fasten-stitch-element.{js,css}` (and v3's, which v4 replaced
without changing its contract), so a Fasten customer changes only the script's host.

Public, static and cacheable for five minutes, so a release reaches embedding pages quickly; the
ETag lets browsers revalidate cheaply after that. Any origin may load them (the API calls the
widget makes are what is restricted to an organization's registered origins), including as a
module script, which needs CORS.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ehiconnect.widget import FASTEN_ASSETS, WidgetAsset, widget_asset

router = APIRouter(tags=["widget"])

CACHE_CONTROL = "public, max-age=300"
FASTEN_VERSIONS = ("v4", "v3")


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


def _asset_response(request: Request, asset: WidgetAsset) -> Response:
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if _etag_matches(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    return Response(content=asset.content, media_type=asset.media_type, headers=headers)


@router.get("/widget/ehi-stitch-element.js", response_class=Response)
@router.head("/widget/ehi-stitch-element.js", response_class=Response, include_in_schema=False)
async def widget_script(request: Request) -> Response:
    """The `<ehi-stitch-element>` web component (plain JavaScript, no dependencies)."""
    return _asset_response(request, widget_asset("ehi-stitch-element.js"))


@router.get("/widget/ehi-stitch-element.css", response_class=Response)
@router.head("/widget/ehi-stitch-element.css", response_class=Response, include_in_schema=False)
async def widget_stylesheet(request: Request) -> Response:
    """The widget's stylesheet, linked from inside its shadow root."""
    return _asset_response(request, widget_asset("ehi-stitch-element.css"))


async def fasten_widget_script(request: Request) -> Response:
    """The same web component under Fasten Connect's path; it also defines
    `<fasten-stitch-element>`."""
    return _asset_response(request, widget_asset(FASTEN_ASSETS["fasten-stitch-element.js"]))


async def fasten_widget_stylesheet(request: Request) -> Response:
    """A stylesheet for the host page's `<head>`, as Fasten's quickstart links it: it sizes the
    element only; the widget styles its inside from its shadow root."""
    return _asset_response(request, widget_asset(FASTEN_ASSETS["fasten-stitch-element.css"]))


for _version in FASTEN_VERSIONS:
    for _name, _endpoint in (
        ("fasten-stitch-element.js", fasten_widget_script),
        ("fasten-stitch-element.css", fasten_widget_stylesheet),
    ):
        _path = f"/connect/{_version}/{_name}"
        router.add_api_route(
            _path, _endpoint, methods=["GET"], response_class=Response, name=f"{_version}-{_name}"
        )
        router.add_api_route(
            _path, _endpoint, methods=["HEAD"], response_class=Response, include_in_schema=False
        )
