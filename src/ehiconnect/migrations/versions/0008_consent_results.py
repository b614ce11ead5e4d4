"""Consent flows keep their result for the widget to poll with a result handle.

Revision ID: 0008_consent_results
Revises: 0006_ingest_batching
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_consent_results"
# 0007 is reserved for concurrent work; whichever lands second re-points its down_revision.
down_revision = "0006_ingest_batching"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "consent_flows", sa.Column("result_handle_hash", sa.String(length=64), nullable=True)
    )
    op.add_column(
        "consent_flows",
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "consent_flows", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "consent_flows", sa.Column("result_read_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_unique_constraint(
        op.f("uq_consent_flows_result_handle_hash"), "consent_flows", ["result_handle_hash"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_consent_flows_result_handle_hash"), "consent_flows", type_="unique")
    op.drop_column("consent_flows", "result_read_at")
    op.drop_column("consent_flows", "finished_at")
    op.drop_column("consent_flows", "result")
    op.drop_column("consent_flows", "result_handle_hash")
