"""Formerly a column of the tracker's ingest checkpoints; now empty (the tracker's own history
has it: `tracker_ingest_progress.batching`, added there where missing).

Revision ID: 0006_ingest_batching
Revises: 0005_tracker
"""

from __future__ import annotations

revision = "0006_ingest_batching"
down_revision = "0005_tracker"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
