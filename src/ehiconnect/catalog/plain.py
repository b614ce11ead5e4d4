"""Read the plain JSON catalog format: the API's own shapes, as a file.

    {"brands":    [{"id", "name", "aliases", "brand_website", "logo", "locations", "portal_ids",
                    "merged_ids"?}],
     "portals":   [{"id", "name", "portal_website"?, "logo"?, "endpoint_ids"}],
     "endpoints": [{"id", "url", "platform_type", "status"?, "fhir_version"?,
                    "authorization_endpoint"?, "token_endpoint"?, "revoke_endpoint"?,
                    "client_id"?, "client_auth_method"?, "scopes"?, "aud_required"?}]}

Client secrets are never read from a catalog file: set them with `ehiconnect catalog configure`.
"""

from __future__ import annotations

from typing import Any

from ehiconnect.catalog.data import BrandData, CatalogData, EndpointData, PortalData


def parse_plain_catalog(document: dict[str, Any]) -> CatalogData:
    try:
        data = CatalogData(
            brands=[
                BrandData(
                    id=str(b["id"]),
                    name=str(b["name"]),
                    aliases=tuple(b.get("aliases", [])),
                    brand_website=b.get("brand_website"),
                    logo=b.get("logo"),
                    locations=tuple(b.get("locations", [])),
                    portal_ids=tuple(b["portal_ids"]),
                    merged_ids=tuple(b.get("merged_ids", [])),
                )
                for b in document.get("brands", [])
            ],
            portals=[
                PortalData(
                    id=str(p["id"]),
                    name=str(p["name"]),
                    portal_website=p.get("portal_website"),
                    logo=p.get("logo"),
                    endpoint_ids=tuple(p["endpoint_ids"]),
                )
                for p in document.get("portals", [])
            ],
            endpoints=[
                EndpointData(
                    id=str(e["id"]),
                    url=str(e["url"]).rstrip("/"),
                    name=e.get("name"),
                    platform_type=str(e["platform_type"]),
                    status=e.get("status", "active"),
                    fhir_version=e.get("fhir_version", "4.0.1"),
                    authorization_endpoint=e.get("authorization_endpoint"),
                    token_endpoint=e.get("token_endpoint"),
                    revoke_endpoint=e.get("revoke_endpoint"),
                    client_id=e.get("client_id"),
                    client_auth_method=e.get("client_auth_method"),
                    scopes=e.get("scopes"),
                    aud_required=e.get("aud_required"),
                )
                for e in document.get("endpoints", [])
            ],
        )
    except KeyError as missing:
        raise ValueError(f"a catalog entry lacks the required field {missing}") from None
    for endpoint in data.endpoints:
        if endpoint.status not in ("active", "suspended"):
            raise ValueError(f"endpoint {endpoint.id}: status must be active or suspended")
    data.check()
    return data
