"""List the sandbox health systems in the catalog, for test mode only."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.catalog.data import BrandData, CatalogData, EndpointData, PortalData
from ehiconnect.catalog.importer import ImportReport, import_catalog
from ehiconnect.db.locks import advisory_xact_lock
from ehiconnect.sandbox.catalog import sandbox_catalog
from ehiconnect.sandbox.systems import PUBLIC_CLIENT_ID

SOURCE = "sandbox"
SYNC_LOCK = "catalog:sandbox-sync"


def sandbox_catalog_data(base_url: str) -> CatalogData:
    data = CatalogData()
    for entry in sandbox_catalog(base_url):
        brand, portal, endpoint = entry["brand"], entry["portal"], entry["endpoint"]
        data.endpoints.append(
            EndpointData(
                id=endpoint["id"],
                url=endpoint["url"],
                name=brand["name"],
                platform_type=endpoint["platform_type"],
                fhir_version=endpoint.get("fhir_version", "4.0.1"),
                authorization_endpoint=endpoint.get("authorization_endpoint"),
                token_endpoint=endpoint.get("token_endpoint"),
                revoke_endpoint=endpoint.get("revocation_endpoint"),
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
                aliases=tuple(brand.get("aliases", [])),
                brand_website=brand.get("brand_website"),
                logo=brand.get("logo"),
                locations=tuple(brand.get("locations", [])),
                portal_ids=(portal["id"],),
            )
        )
    return data


async def sync_sandbox_catalog(session: AsyncSession, base_url: str) -> ImportReport:
    """Upsert the sandbox systems; API processes starting together take turns (each would
    otherwise find a row missing and insert it, and all but one fail on its primary key)."""
    await advisory_xact_lock(session, SYNC_LOCK)
    return await import_catalog(
        session, sandbox_catalog_data(base_url), source=SOURCE, sandbox=True
    )
