"""Tracker ingest checkpoints name how their batches were cut.

Revision ID: 0006_ingest_batching
Revises: 0005_tracker
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ingest_batching"
down_revision = "0005_tracker"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tracker_ingest_progress", sa.Column("batching", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tracker_ingest_progress", "batching")
