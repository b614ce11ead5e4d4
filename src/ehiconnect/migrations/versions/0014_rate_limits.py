"""Rate-limit buckets shared by every API process (UNLOGGED: a crash only refills them).

Revision ID: 0014_rate_limits
Revises: 0013_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_rate_limits"
down_revision = "0013_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("client_key", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("client_key", name=op.f("pk_rate_limits")),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
