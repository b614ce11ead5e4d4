"""`/widget/...`: the consent widget's script and stylesheet (DESIGN §1, §3).

Public, static and cacheable for five minutes, so a release reaches embedding pages quickly; the
ETag lets browsers revalidate cheaply after that. Any origin may load them (the API calls the
widget makes are what is restricted to an organization's registered origins), including as a
module script, which needs CORS.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ehiconnect.widget import WidgetAsset, widget_asset

router = APIRouter(tags=["widget"])

CACHE_CONTROL = "public, max-age=300"


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
