"""The tracker's tables, created where missing: a fresh database, or one the platform made them in.

Until the tracker had its own history, the platform's migrations 0005_tracker and
0006_ingest_batching created these tables. On a database they ran on, this revision adopts what
is there and creates only what is missing (a table, a column added later, an index), so no row is
lost; on a fresh one it creates everything. The tables are written out here as they were at that
point, not taken from the models, which later revisions will change.

It also creates what the tracker uses but does not own, when missing: the task queue's schema
(its jobs run on procrastinate, in the same database) and the console's account tables (its
console signs in with realm "tracker"). On a database shared with the platform these are the
platform's; its migrations create them only when missing too, whichever starts first.

Downgrading drops the tracker's own tables and leaves the shared ones.

Revision ID: tracker_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ehiconnect.db.models import NAMING_CONVENTION

revision = "tracker_0001"
down_revision = None
branch_labels = None
depends_on = None

QUEUE_TABLE = "procrastinate_jobs"

_TS = sa.DateTime(timezone=True)
_JSON = postgresql.JSONB(astext_type=sa.Text())
_TEXTS = sa.ARRAY(sa.Text())

_owned = sa.MetaData(naming_convention=NAMING_CONVENTION)
_shared = sa.MetaData(naming_convention=NAMING_CONVENTION)

OWNED = (
    sa.Table(
        "tracker_consents",
        _owned,
        sa.Column("entry_id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("org_connection_id", sa.Text(), nullable=False, index=True),
        sa.Column("brand_id", sa.Text()),
        sa.Column("portal_id", sa.Text()),
        sa.Column("endpoint_id", sa.Text()),
        sa.Column("external_id", sa.Text(), index=True),
        sa.Column("scope", sa.Text()),
        sa.Column("api_mode", sa.String(4)),
        sa.Column("connection_status", sa.Text()),
        sa.Column("platform_type", sa.Text()),
        sa.Column("event_at", _TS),
        sa.Column("received_at", _TS, nullable=False),
    ),
    sa.Table(
        "tracker_widget_events",
        _owned,
        sa.Column("event_key", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("org_connection_ids", _TEXTS, nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False, index=True),
    ),
    sa.Table(
        "tracker_webhooks",
        _owned,
        sa.Column("webhook_id", sa.Text(), primary_key=True),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("org_connection_id", sa.Text(), index=True),
        sa.Column("task_id", sa.Text(), index=True),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("processed_at", _TS),
        sa.Column("flag", sa.Text()),
    ),
    sa.Table(
        "tracker_jobs",
        _owned,
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("org_connection_id", sa.Text(), nullable=False, index=True),
        sa.Column("external_id", sa.Text()),
        sa.Column("brand_id", sa.Text()),
        sa.Column("state", sa.String(24), nullable=False, index=True),
        sa.Column("task_id", sa.Text(), unique=True),
        sa.Column("attempts", _JSON, nullable=False),
        sa.Column("export_requests", sa.Integer(), nullable=False),
        sa.Column("failed_step", sa.Text()),
        sa.Column("failure_reason", sa.Text()),
        sa.Column("failure_description", sa.Text()),
        sa.Column("download_links", _JSON, nullable=False),
        sa.Column("files", _JSON, nullable=False),
        sa.Column("stats", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("export_requested_at", _TS),
        sa.Column("webhook_at", _TS),
        sa.Column("polled_at", _TS),
        sa.Column("downloaded_at", _TS),
        sa.Column("ingested_at", _TS),
        sa.Column("notified_at", _TS),
        sa.Column("files_expire_at", _TS, index=True),
    ),
    sa.Table(
        "tracker_job_events",
        _owned,
        sa.Column("event_id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("job_id", sa.String(32), nullable=False, index=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
    ),
    sa.Table(
        "tracker_ingest_progress",
        _owned,
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("sink", sa.Text(), primary_key=True),
        sa.Column("file_key", sa.Text(), primary_key=True),
        sa.Column("lines_done", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("batching", sa.Text()),  # once the platform's 0006_ingest_batching
    ),
    sa.Table(
        "tracker_fhir_resources",
        _owned,
        sa.Column("resource_type", sa.Text(), primary_key=True),
        sa.Column("resource_id", sa.Text(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.Text()),
        sa.Column("codes", _TEXTS, nullable=False),
        sa.Column("effective_date", sa.Text()),
        sa.Column("body", _JSON, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Index("ix_tracker_fhir_resources_patient_type", "patient_id", "resource_type"),
        sa.Index("ix_tracker_fhir_resources_codes", "codes", postgresql_using="gin"),
        sa.Index("ix_tracker_fhir_resources_type_date", "resource_type", "effective_date"),
    ),
    sa.Table(
        "tracker_fhir_versions",
        _owned,
        sa.Column("resource_type", sa.Text(), primary_key=True),
        sa.Column("resource_id", sa.Text(), primary_key=True),
        sa.Column("content_sha256", sa.String(64), primary_key=True),
        sa.Column("body", _JSON, nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
    ),
)

# The console kit's tables, as the platform's 0013_console creates them (shared by realm).
SHARED = (
    sa.Table(
        "console_users",
        _shared,
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("realm", sa.String(16), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("org_id", sa.Text()),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", _TS),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_login_at", _TS),
        sa.Column("disabled_at", _TS),
        sa.UniqueConstraint("realm", "email", name="uq_console_users_realm_email"),
    ),
    sa.Table(
        "console_sessions",
        _shared,
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("console_users.user_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column("api_mode", sa.String(4), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Index("ix_console_sessions_expires_at", "expires_at"),
    ),
)


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(QUEUE_TABLE):
        # As the platform's 0001 does: straight to the driver, the schema holds '%' and ':'.
        driver_connection = bind.connection.driver_connection
        assert driver_connection is not None
        driver_connection.execute(SchemaManager.get_schema())
    for table in (*SHARED, *OWNED):
        _create_what_is_missing(bind, table)


def downgrade() -> None:
    for table in reversed(OWNED):  # indexes go with their tables
        op.drop_table(table.name)


def _create_what_is_missing(bind: Connection, table: sa.Table) -> None:
    """The table with its indexes if it is not there; else the columns and indexes it lacks."""
    inspector = sa.inspect(bind)
    if not inspector.has_table(table.name):
        table.create(bind)
        return
    present = {column["name"] for column in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name in present:
            continue
        if not column.nullable:
            raise RuntimeError(
                f"{table.name} lacks the required column {column.name}: this database's tracker "
                "tables come from an unknown version; restore them from a backup or drop them"
            )
        op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    indexed = {index["name"] for index in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexed:
            index.create(bind)
