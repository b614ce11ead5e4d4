"""Catalog endpoints say whether the crawler may reach private addresses for them.

Revision ID: 0010_endpoint_private_network
Revises: 0009_token_lifetime
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_endpoint_private_network"
down_revision = "0009_token_lifetime"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "catalog_endpoints",
        sa.Column("allow_private_network", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("catalog_endpoints", "allow_private_network")
