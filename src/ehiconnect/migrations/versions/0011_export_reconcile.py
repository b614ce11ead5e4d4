"""Export tasks name the job that drives them and count their own failed runs.

The reconciler ends or re-queues a pending task whose job is gone; killed runs no longer count
against the export's retry budget (`failures` counts only runs that ended in an error).

Revision ID: 0011_export_reconcile
Revises: 0010_endpoint_private_network
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_export_reconcile"
down_revision = "0010_endpoint_private_network"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "export_tasks", sa.Column("failures", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("export_tasks", sa.Column("job_id", sa.BigInteger(), nullable=True))
    # Pending tasks of an older version: adopt their latest job, so none is queued twice.
    op.execute(
        """
        UPDATE export_tasks t SET job_id = (
            SELECT max(j.id) FROM procrastinate_jobs j
            WHERE j.task_name = 'exports:run_export' AND j.args->>'task_id' = t.task_id)
        WHERE t.status = 'pending'
        """
    )


def downgrade() -> None:
    op.drop_column("export_tasks", "job_id")
    op.drop_column("export_tasks", "failures")
