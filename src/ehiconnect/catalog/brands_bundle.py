"""Read a SMART User-access Brands Bundle (SMART App Launch 2.2, "brands.html") into CatalogData.

The Bundle holds Organization resources (brands) and Endpoint resources. A brand carries:
`name`, `alias[]`, `telecom[system=url]` (website), `address[]` (locations), the
`organization-brand` extension (`brandLogo`), and one `organization-portal` extension per portal
(`portalName`, `portalUrl`, `portalLogo`, `portalEndpoint` references). A brand without portals
that is `partOf` another gets its access through that brand's portals (affiliates). Publishers
differ in what they fill in, so everything but the ids and names is optional here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ehiconnect.catalog.data import BrandData, CatalogData, EndpointData, PortalData

BRAND_EXT = "http://hl7.org/fhir/StructureDefinition/organization-brand"
PORTAL_EXT = "http://hl7.org/fhir/StructureDefinition/organization-portal"
FHIR_VERSION_EXT = "http://hl7.org/fhir/StructureDefinition/endpoint-fhir-version"


def parse_brands_bundle(bundle: dict[str, Any], *, platform_type: str) -> CatalogData:
    if bundle.get("resourceType") != "Bundle":
        raise ValueError("a User-access Brands file must be a FHIR Bundle")
    organizations: dict[str, dict[str, Any]] = {}
    endpoints: dict[str, EndpointData] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        kind, rid = resource.get("resourceType"), resource.get("id")
        if not rid:
            continue
        if kind == "Organization":
            organizations[rid] = resource
        elif kind == "Endpoint":
            endpoints[rid] = _endpoint(resource, platform_type)

    data = CatalogData(endpoints=list(endpoints.values()))
    own_portals: dict[str, list[str]] = {}
    for org_id, org in organizations.items():
        portal_ids = []
        for position, portal in enumerate(_extensions(org, PORTAL_EXT)):
            parsed = _portal(org_id, position, portal, org, endpoints)
            if parsed is not None:
                data.portals.append(parsed)
                portal_ids.append(parsed.id)
        own_portals[org_id] = portal_ids

    for org_id, org in organizations.items():
        portal_ids = own_portals[org_id]
        if not portal_ids:
            parent = _reference_id(org.get("partOf"), "Organization")
            portal_ids = own_portals.get(parent or "", [])
        if not portal_ids:
            continue  # a brand nobody can connect to is not worth listing
        data.brands.append(
            BrandData(
                id=org_id,
                name=org.get("name") or org_id,
                aliases=tuple(a for a in org.get("alias", []) if isinstance(a, str)),
                brand_website=_website(org),
                logo=_sub_value(_first(_extensions(org, BRAND_EXT)), "brandLogo"),
                locations=tuple(_locations(org)),
                portal_ids=tuple(portal_ids),
            )
        )
    data.check()
    return data


def _endpoint(resource: dict[str, Any], platform_type: str) -> EndpointData:
    address = resource.get("address")
    if not isinstance(address, str) or not address.startswith(("https://", "http://")):
        raise ValueError(f"Endpoint/{resource.get('id')} has no http(s) address")
    version = next(
        (
            ext.get("valueCode")
            for ext in resource.get("extension", [])
            if ext.get("url") == FHIR_VERSION_EXT
        ),
        None,
    )
    status = "active" if resource.get("status", "active") == "active" else "suspended"
    return EndpointData(
        id=resource["id"],
        url=address.rstrip("/"),
        name=resource.get("name"),
        platform_type=platform_type,
        status=status,
        fhir_version=version or "4.0.1",
    )


def _portal(
    org_id: str,
    position: int,
    portal: dict[str, Any],
    org: dict[str, Any],
    endpoints: dict[str, EndpointData],
) -> PortalData | None:
    endpoint_ids = [
        eid
        for sub in portal.get("extension", [])
        if sub.get("url") == "portalEndpoint"
        and (eid := _reference_id(sub.get("valueReference"), "Endpoint")) in endpoints
    ]
    if not endpoint_ids:
        # Some publishers list endpoints on Organization.endpoint instead of in the portal.
        endpoint_ids = [
            eid
            for ref in org.get("endpoint", [])
            if (eid := _reference_id(ref, "Endpoint")) in endpoints
        ]
    if not endpoint_ids:
        return None
    name = _sub_value(portal, "portalName") or org.get("name") or org_id
    url = _sub_value(portal, "portalUrl")
    # Portals have no id of their own in the format: derive a stable one.
    digest = hashlib.sha256(f"{org_id}|{url or ''}|{name}|{position}".encode()).hexdigest()[:16]
    return PortalData(
        id=f"{org_id}-portal-{digest}",
        name=name,
        portal_website=url,
        logo=_sub_value(portal, "portalLogo"),
        endpoint_ids=tuple(endpoint_ids),
    )


def _extensions(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [ext for ext in resource.get("extension", []) if ext.get("url") == url]


def _first(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return items[0] if items else None


def _sub_value(extension: dict[str, Any] | None, name: str) -> str | None:
    if extension is None:
        return None
    for sub in extension.get("extension", []):
        if sub.get("url") == name:
            for key, value in sub.items():
                if key.startswith("value") and isinstance(value, str):
                    return value
    return None


def _reference_id(reference: object, resource_type: str) -> str | None:
    if not isinstance(reference, dict):
        return None
    text = reference.get("reference")
    if not isinstance(text, str):
        return None
    prefix = f"{resource_type}/"
    tail = text.split("/_history/")[0]
    if prefix in tail:
        return tail.rsplit(prefix, 1)[1]
    return None


def _website(org: dict[str, Any]) -> str | None:
    for telecom in org.get("telecom", []):
        if telecom.get("system") == "url" and isinstance(telecom.get("value"), str):
            return str(telecom["value"])
    return None


def _locations(org: dict[str, Any]) -> list[dict[str, Any]]:
    locations = []
    for address in org.get("address", []):
        location = {
            key: address[key]
            for key in ("city", "state", "postalCode", "country")
            if isinstance(address.get(key), str)
        }
        if location:
            locations.append(location)
    return locations
