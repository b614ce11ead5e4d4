"""CORS for the browser-facing endpoints: only an organization's registered origins get in."""

from __future__ import annotations

from fastapi import Request, Response

from ehiconnect.db.models import Organization
from ehiconnect.errors import Forbidden
from ehiconnect.ids import ApiMode
from ehiconnect.orgs.origins import origin_allowed

# Paths a browser calls directly; their error responses carry CORS headers too, so the widget can
# show the error's description instead of an opaque network failure (they hold no data) — except
# the refusal of an origin the organization has not registered, which that origin must not read.
BROWSER_PATHS = (
    "/v1/bridge/org",
    "/v1/bridge/catalog",
    "/v1/bridge/connect/result",
    "/v1/support/request",
)


def allow_origin(request: Request, response: Response, org: Organization, mode: ApiMode) -> None:
    origin = request.headers.get("origin")
    if origin is None:
        return
    if not origin_allowed(origin, org, mode):
        request.state.origin_refused = True
        raise Forbidden(
            f"the origin {origin} is not registered for this organization; register it with "
            "`ehiconnect orgs create --origin`",
            code="origin_not_allowed",
        )
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"


def error_cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    refused = getattr(request.state, "origin_refused", False)
    if origin and not refused and request.url.path.startswith(BROWSER_PATHS):
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}
