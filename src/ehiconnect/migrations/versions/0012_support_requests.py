"""Support requests from the widget ("I can't find my health system"), announced to the
organization as `patient.request_health_system`.

Revision ID: 0012_support_requests
Revises: 0011_fleet_state
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_support_requests"
down_revision = "0011_fleet_state"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "support_requests",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("api_mode", sa.String(length=4), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.org_id"],
            name=op.f("fk_support_requests_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_support_requests")),
    )
    op.create_index(
        "ix_support_requests_org_created",
        "support_requests",
        ["org_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_support_requests_org_created", table_name="support_requests")
    op.drop_table("support_requests")
