"""Catalog tables. Field names follow the public contract (DESIGN §1, compat)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, LargeBinary, String, Text, func
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base

DEFAULT_SCOPES = "launch/patient openid fhirUser offline_access patient/*.rs"


class CatalogBrand(Base):
    __tablename__ = "catalog_brands"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    aliases: Mapped[list[str]] = mapped_column(default=list)
    brand_website: Mapped[str | None] = mapped_column(Text)
    logo: Mapped[str | None] = mapped_column(Text)
    locations: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    portal_ids: Mapped[list[str]] = mapped_column(default=list)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(Text)
    # active, or deprecated (gone from its source, or merged into `merged_into`): never searched,
    # still resolvable so stored ids keep working.
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class CatalogPortal(Base):
    __tablename__ = "catalog_portals"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    portal_website: Mapped[str | None] = mapped_column(Text)
    logo: Mapped[str | None] = mapped_column(Text)
    endpoint_ids: Mapped[list[str]] = mapped_column(default=list)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class CatalogEndpoint(Base):
    """A FHIR base URL with its OAuth endpoints and how the platform connects to it."""

    __tablename__ = "catalog_endpoints"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    platform_type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")
    fhir_version: Mapped[str] = mapped_column(Text, default="4.0.1")
    authorization_endpoint: Mapped[str | None] = mapped_column(Text)
    token_endpoint: Mapped[str | None] = mapped_column(Text)
    revoke_endpoint: Mapped[str | None] = mapped_column(Text)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(Text)
    merged_into: Mapped[str | None] = mapped_column(Text)
    # Connection settings, as data per endpoint.
    client_id: Mapped[str | None] = mapped_column(Text)
    client_auth_method: Mapped[str] = mapped_column(String(32), default="none")
    client_secret_kid: Mapped[str | None] = mapped_column(Text)
    client_secret_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    scopes: Mapped[str] = mapped_column(Text, default=DEFAULT_SCOPES)
    aud_required: Mapped[bool] = mapped_column(Boolean, default=True)
    # An on-premises health system: its data may point the crawler at private addresses. Off
    # unless the operator sets it (`ehiconnect catalog configure ID --allow-private-network`).
    allow_private_network: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_false()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    @property
    def client_secret_context(self) -> str:
        """What the sealed client secret is bound to: it opens for this endpoint only."""
        return f"endpoint:{self.id}:client_secret"

    def reachable_privately(self, api_mode: str) -> bool:
        """Whether calls for a connection in `api_mode` may go to private addresses: test mode
        (the sandbox runs on loopback) or an endpoint the operator allowed. Never metadata."""
        return api_mode == "test" or self.allow_private_network


CatalogEntry = CatalogBrand | CatalogPortal | CatalogEndpoint
"""Any row of the catalog: each has an id, a source, a status, `sandbox` and `merged_into`."""
