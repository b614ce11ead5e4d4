"""The catalog as plain values, independent of where it came from or how it is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EndpointData:
    id: str
    url: str
    platform_type: str
    name: str | None = None
    status: str = "active"
    fhir_version: str = "4.0.1"
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    revoke_endpoint: str | None = None
    # Connection settings (optional in imports; set per endpoint by the operator otherwise).
    client_id: str | None = None
    client_auth_method: str | None = None
    scopes: str | None = None
    aud_required: bool | None = None


@dataclass(frozen=True)
class PortalData:
    id: str
    name: str
    endpoint_ids: tuple[str, ...]
    portal_website: str | None = None
    logo: str | None = None


@dataclass(frozen=True)
class BrandData:
    id: str
    name: str
    portal_ids: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    brand_website: str | None = None
    logo: str | None = None
    locations: tuple[dict[str, Any], ...] = ()
    merged_ids: tuple[str, ...] = ()  # earlier ids of this brand that must keep resolving


@dataclass
class CatalogData:
    brands: list[BrandData] = field(default_factory=list)
    portals: list[PortalData] = field(default_factory=list)
    endpoints: list[EndpointData] = field(default_factory=list)

    def check(self) -> None:
        """Refuse dangling references: every portal and endpoint a brand names must be present."""
        portal_ids = {p.id for p in self.portals}
        endpoint_ids = {e.id for e in self.endpoints}
        problems = [
            f"brand {b.id} names missing portal {pid}"
            for b in self.brands
            for pid in b.portal_ids
            if pid not in portal_ids
        ] + [
            f"portal {p.id} names missing endpoint {eid}"
            for p in self.portals
            for eid in p.endpoint_ids
            if eid not in endpoint_ids
        ]
        if problems:
            shown = "; ".join(problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise ValueError(f"the catalog is inconsistent: {shown}{more}")
