"""Foundation: the task queue's schema, organizations, API keys, connections, audit log.

The procrastinate schema is applied here at the version pinned in pyproject.toml; upgrading
procrastinate means adding a migration that runs its shipped migration scripts.

Revision ID: 0001_foundation
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # procrastinate's schema contains '%' and ':' that SQLAlchemy would read as parameters, so it
    # goes to the driver connection directly (psycopg does not parse placeholders without params).
    # Only when missing: a tracker sharing this database may have started first and applied it.
    if not sa.inspect(op.get_bind()).has_table("procrastinate_jobs"):
        driver_connection = op.get_bind().connection.driver_connection
        assert driver_connection is not None
        driver_connection.execute(SchemaManager.get_schema())

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=True),
        sa.Column("org_connection_id", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_org_connection_id"), "audit_log", ["org_connection_id"], unique=False
    )
    op.create_index(op.f("ix_audit_log_org_id"), "audit_log", ["org_id"], unique=False)
    op.create_table(
        "organizations",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("logo_url", sa.Text(), nullable=True),
        sa.Column("privacy_policy_url", sa.Text(), nullable=True),
        sa.Column("website", sa.Text(), nullable=True),
        sa.Column("redirect_uris", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("allowed_origins", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("api_mode", sa.String(length=4), nullable=False),
        sa.Column("public_id", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_hint", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.org_id"],
            name=op.f("fk_api_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_index(op.f("ix_api_keys_public_id"), "api_keys", ["public_id"], unique=False)
    op.create_table(
        "org_connections",
        sa.Column("org_connection_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("api_mode", sa.String(length=4), nullable=False),
        sa.Column("catalog_brand_id", sa.Text(), nullable=True),
        sa.Column("catalog_portal_id", sa.Text(), nullable=True),
        sa.Column("catalog_endpoint_id", sa.Text(), nullable=False),
        sa.Column("platform_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("consent_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.org_id"],
            name=op.f("fk_org_connections_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_connection_id", name=op.f("pk_org_connections")),
    )
    op.create_index(
        "ix_org_connections_org_mode", "org_connections", ["org_id", "api_mode"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_org_connections_org_mode", table_name="org_connections")
    op.drop_table("org_connections")
    op.drop_index(op.f("ix_api_keys_public_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("organizations")
    op.drop_index(op.f("ix_audit_log_org_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_org_connection_id"), table_name="audit_log")
    op.drop_table("audit_log")
