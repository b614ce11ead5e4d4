"""The sandbox's health systems as the platform's catalog data: how the sandbox lists itself.

The platform never imports this module: `sandbox_catalog_data` is the default entry of its
`catalog.builtin_sources` setting, which `ehiconnect.catalog.builtin` loads by name and imports as
the test-mode catalog (at API start-up, and with `ehiconnect catalog sync-sandbox`).
"""

from __future__ import annotations

from ehiconnect.catalog.data import BrandData, CatalogData, EndpointData, PortalData
from ehiconnect.sandbox.catalog import sandbox_catalog
from ehiconnect.sandbox.systems import PUBLIC_CLIENT_ID


def sandbox_catalog_data(base_url: str) -> CatalogData:
    """Every sandbox system served at `base_url`, connected through the sandbox's public client."""
    data = CatalogData()
    for entry in sandbox_catalog(base_url):
        brand, portal, endpoint = entry["brand"], entry["portal"], entry["endpoint"]
        data.endpoints.append(
            EndpointData(
                id=endpoint["id"],
                url=endpoint["url"],
                name=brand["name"],
                platform_type=endpoint["platform_type"],
                fhir_version=endpoint["fhir_version"],
                authorization_endpoint=endpoint["authorization_endpoint"],
                token_endpoint=endpoint["token_endpoint"],
                revoke_endpoint=endpoint["revocation_endpoint"],
                client_id=PUBLIC_CLIENT_ID,
                client_auth_method="none",
                aud_required=True,
            )
        )
        data.portals.append(
            PortalData(id=portal["id"], name=portal["name"], endpoint_ids=(endpoint["id"],))
        )
        data.brands.append(
            BrandData(
                id=brand["id"],
                name=brand["name"],
                aliases=tuple(brand["aliases"]),
                brand_website=brand["brand_website"],
                logo=brand["logo"],
                locations=tuple(brand["locations"]),
                portal_ids=(portal["id"],),
            )
        )
    return data
