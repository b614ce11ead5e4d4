"""Connection tokens remember the access token's lifetime, so the refresh margin can scale to it.

Revision ID: 0009_token_lifetime
Revises: 0008_consent_results
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_token_lifetime"
down_revision = "0008_consent_results"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "connection_tokens",
        sa.Column("access_lifetime_seconds", sa.Integer(), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("connection_tokens", "access_lifetime_seconds")
