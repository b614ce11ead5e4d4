"""ORM models of the foundation: organizations, their keys, connections and the audit log.

Feature packages define their own models on the same `Base` (e.g. `ehiconnect.webhooks.models`);
`ehiconnect.schema` imports them all so Alembic and tests see one metadata.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[str]: ARRAY(Text),
        list[dict[str, Any]]: JSONB,
    }


class Organization(Base):
    __tablename__ = "organizations"

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    logo_url: Mapped[str | None] = mapped_column(Text)
    privacy_policy_url: Mapped[str | None] = mapped_column(Text)
    website: Mapped[str | None] = mapped_column(Text)
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    allowed_origins: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class ApiKey(Base):
    """One private key of an organization in one mode.

    A key pair is (public_id, private key); rotation adds a row with the same public_id and gives
    the old row an `expires_at` a grace period away. Only the private key's hash is stored.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    api_mode: Mapped[str] = mapped_column(String(4))
    public_id: Mapped[str] = mapped_column(Text, index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hint: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class OrgConnection(Base):
    """A patient's authorization at one health-system endpoint, owned by one organization."""

    __tablename__ = "org_connections"

    org_connection_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    api_mode: Mapped[str] = mapped_column(String(4))
    catalog_brand_id: Mapped[str | None] = mapped_column(Text)
    catalog_portal_id: Mapped[str | None] = mapped_column(Text)
    catalog_endpoint_id: Mapped[str] = mapped_column(Text)
    platform_type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(Text)
    consent_expires_at: Mapped[dt.datetime | None] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(Text)
    # Where the data lives: the FHIR base and the patient's id there (from the token response).
    fhir_base_url: Mapped[str | None] = mapped_column(Text)
    source_patient_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (Index("ix_org_connections_org_mode", "org_id", "api_mode"),)


class AuditLog(Base):
    """Append-only record of who did what to which organization's data, and when.

    `detail` holds identifiers and counts only, never tokens or patient data.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    org_id: Mapped[str | None] = mapped_column(Text, index=True)
    org_connection_id: Mapped[str | None] = mapped_column(Text, index=True)
    task_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
