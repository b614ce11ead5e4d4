"""Console accounts and sessions; indexes for the console's pages over time ranges.

The account tables serve every console, kept apart by realm: the platform's and the tracker's.
The tracker's own migrations create them too when they are missing (a tracker's database needs
no platform), so here they are created only when missing: either history may run first.

Revision ID: 0013_console
Revises: 0012_support_requests
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_console"
down_revision = "0012_support_requests"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)

# (name, table, columns) of the indexes the console's queries need on other features' tables.
_INDEXES = (
    ("ix_export_tasks_org_mode_created", "export_tasks", ["org_id", "api_mode", "created_at"]),
    ("ix_export_tasks_mode_created", "export_tasks", ["api_mode", "created_at"]),
    (
        "ix_webhook_attempts_endpoint_attempted",
        "webhook_attempts",
        ["endpoint_id", "attempted_at"],
    ),
    (
        "ix_webhook_deliveries_endpoint_created",
        "webhook_deliveries",
        ["endpoint_id", "created_at"],
    ),
    ("ix_audit_log_action_occurred", "audit_log", ["action", "occurred_at"]),
    (
        "ix_consent_flows_org_mode_created",
        "consent_flows",
        ["org_id", "api_mode", "created_at"],
    ),
    ("ix_consent_records_event_recorded", "consent_records", ["event", "recorded_at"]),
)


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("console_users"):
        _create_account_tables()
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns, unique=False)


def _create_account_tables() -> None:
    op.create_table(
        "console_users",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("realm", sa.String(length=16), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_login_at", _TS, nullable=True),
        sa.Column("disabled_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("realm", "email", name="uq_console_users_realm_email"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column("api_mode", sa.String(length=4), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.user_id"],
            name=op.f("fk_console_sessions_user_id_console_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index(
        op.f("ix_console_sessions_user_id"), "console_sessions", ["user_id"], unique=False
    )
    op.create_index(
        "ix_console_sessions_expires_at", "console_sessions", ["expires_at"], unique=False
    )


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_index(op.f("ix_console_sessions_user_id"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_users")
