"""Exports: tasks and their staging area (items, attachments, steps, errors).

Revision ID: 0004_exports
Revises: 0003_consent
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_exports"
down_revision = "0003_consent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_attachments",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("binary_id", sa.Text(), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("blob_key", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "binary_id", name=op.f("pk_export_attachments")),
    )
    op.create_table(
        "export_errors",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("error_id", sa.Text(), nullable=False),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "error_id", name=op.f("pk_export_errors")),
    )
    op.create_table(
        "export_items",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "task_id", "resource_type", "resource_id", name=op.f("pk_export_items")
        ),
    )
    op.create_table(
        "export_steps",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "step", name=op.f("pk_export_steps")),
    )
    op.create_table(
        "export_tasks",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("org_connection_id", sa.Text(), nullable=False),
        sa.Column("api_mode", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("failure_description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Text(), nullable=True),
        sa.Column("file_key", sa.Text(), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("stats", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error_key", sa.Text(), nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_export_tasks")),
    )
    op.create_index(
        op.f("ix_export_tasks_org_connection_id"),
        "export_tasks",
        ["org_connection_id"],
        unique=False,
    )
    op.create_index(op.f("ix_export_tasks_org_id"), "export_tasks", ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_export_tasks_org_id"), table_name="export_tasks")
    op.drop_index(op.f("ix_export_tasks_org_connection_id"), table_name="export_tasks")
    op.drop_table("export_tasks")
    op.drop_table("export_steps")
    op.drop_table("export_items")
    op.drop_table("export_errors")
    op.drop_table("export_attachments")
