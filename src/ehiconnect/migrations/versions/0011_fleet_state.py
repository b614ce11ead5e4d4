"""State the processes of a fleet share: the private_key_jwt signing key (sealed by the vault,
one for all processes) and the fingerprints of settings every process must have equal.

Revision ID: 0011_fleet_state
Revises: 0011_export_reconcile (both were numbered 0011 at once; this one follows)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_fleet_state"
down_revision = "0011_export_reconcile"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_signing_keys",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("sealed_kid", sa.Text(), nullable=False),
        sa.Column("private_jwk_ct", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_client_signing_keys")),
    )
    op.create_table(
        "fleet_settings",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fingerprint", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fleet_settings")),
    )


def downgrade() -> None:
    op.drop_table("fleet_settings")
    op.drop_table("client_signing_keys")
