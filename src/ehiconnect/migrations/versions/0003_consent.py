"""Consent: the catalog, consent flows and records, the token vault, connection source fields.

Revision ID: 0003_consent
Revises: 0002_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_consent"
down_revision = "0002_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_brands",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("aliases", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("brand_website", sa.Text(), nullable=True),
        sa.Column("logo", sa.Text(), nullable=True),
        sa.Column("locations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("portal_ids", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("merged_into", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_brands")),
    )
    op.create_table(
        "catalog_endpoints",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("platform_type", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fhir_version", sa.Text(), nullable=False),
        sa.Column("authorization_endpoint", sa.Text(), nullable=True),
        sa.Column("token_endpoint", sa.Text(), nullable=True),
        sa.Column("revoke_endpoint", sa.Text(), nullable=True),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("merged_into", sa.Text(), nullable=True),
        sa.Column("client_id", sa.Text(), nullable=True),
        sa.Column("client_auth_method", sa.String(length=32), nullable=False),
        sa.Column("client_secret_kid", sa.Text(), nullable=True),
        sa.Column("client_secret_ct", sa.LargeBinary(), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("aud_required", sa.Boolean(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_endpoints")),
    )
    op.create_table(
        "catalog_portals",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("portal_website", sa.Text(), nullable=True),
        sa.Column("logo", sa.Text(), nullable=True),
        sa.Column("endpoint_ids", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("merged_into", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_portals")),
    )
    op.create_table(
        "consent_flows",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("api_mode", sa.String(length=4), nullable=False),
        sa.Column("brand_id", sa.Text(), nullable=True),
        sa.Column("portal_id", sa.Text(), nullable=True),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("widget_origin", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("external_state", sa.Text(), nullable=True),
        sa.Column("reconnect_connection_id", sa.Text(), nullable=True),
        sa.Column("requested_scope", sa.Text(), nullable=False),
        sa.Column("token_endpoint", sa.Text(), nullable=False),
        sa.Column("verifier_kid", sa.Text(), nullable=False),
        sa.Column("verifier_ct", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_consent_flows")),
    )
    op.create_index(op.f("ix_consent_flows_org_id"), "consent_flows", ["org_id"], unique=False)
    op.create_table(
        "consent_records",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("org_connection_id", sa.Text(), nullable=False),
        sa.Column("api_mode", sa.String(length=4), nullable=False),
        sa.Column("brand_id", sa.Text(), nullable=True),
        sa.Column("portal_id", sa.Text(), nullable=True),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("external_state", sa.Text(), nullable=True),
        sa.Column("requested_scope", sa.Text(), nullable=True),
        sa.Column("granted_scope", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index(
        op.f("ix_consent_records_org_connection_id"),
        "consent_records",
        ["org_connection_id"],
        unique=False,
    )
    op.create_index(op.f("ix_consent_records_org_id"), "consent_records", ["org_id"], unique=False)
    op.create_table(
        "connection_tokens",
        sa.Column("org_connection_id", sa.String(length=36), nullable=False),
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("access_token_ct", sa.LargeBinary(), nullable=False),
        sa.Column("refresh_token_ct", sa.LargeBinary(), nullable=True),
        sa.Column("token_type", sa.String(length=32), nullable=False),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_failures", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_connection_id"],
            ["org_connections.org_connection_id"],
            name=op.f("fk_connection_tokens_org_connection_id_org_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_connection_id", name=op.f("pk_connection_tokens")),
    )
    op.add_column("org_connections", sa.Column("fhir_base_url", sa.Text(), nullable=True))
    op.add_column("org_connections", sa.Column("source_patient_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("org_connections", "source_patient_id")
    op.drop_column("org_connections", "fhir_base_url")
    op.drop_table("connection_tokens")
    op.drop_index(op.f("ix_consent_records_org_id"), table_name="consent_records")
    op.drop_index(op.f("ix_consent_records_org_connection_id"), table_name="consent_records")
    op.drop_table("consent_records")
    op.drop_index(op.f("ix_consent_flows_org_id"), table_name="consent_flows")
    op.drop_table("consent_flows")
    op.drop_table("catalog_portals")
    op.drop_table("catalog_endpoints")
    op.drop_table("catalog_brands")
