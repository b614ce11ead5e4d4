"""Formerly the tracker's tables; now empty (they belong to the tracker's own history).

The tracker migrates its tables itself (`ehiconnect/tracker/migrations`, version table
`tracker_alembic_version`): on a database where this revision once created them, its first
revision adopts them as they are. A fresh platform database gets no tracker table. The revision
stays, empty, so databases already past it keep a valid history.

Revision ID: 0005_tracker
Revises: 0004_exports
"""

from __future__ import annotations

revision = "0005_tracker"
down_revision = "0004_exports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass  # the tracker's tables, if any, are the tracker's history's to drop
