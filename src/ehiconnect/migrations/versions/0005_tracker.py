"""Tracker: consent log, widget-event cache, webhooks, job ledger, ingest progress, FHIR store.

Revision ID: 0005_tracker
Revises: 0004_exports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import Text

revision = "0005_tracker"
down_revision = "0004_exports"
branch_labels = None
depends_on = None

TABLES = (
    "tracker_widget_events",
    "tracker_webhooks",
    "tracker_jobs",
    "tracker_job_events",
    "tracker_ingest_progress",
    "tracker_fhir_versions",
    "tracker_fhir_resources",
    "tracker_consents",
)


def upgrade() -> None:
    op.create_table(
        "tracker_consents",
        sa.Column("entry_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("org_connection_id", sa.Text(), nullable=False),
        sa.Column("brand_id", sa.Text(), nullable=True),
        sa.Column("portal_id", sa.Text(), nullable=True),
        sa.Column("endpoint_id", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("api_mode", sa.String(length=4), nullable=True),
        sa.Column("connection_status", sa.Text(), nullable=True),
        sa.Column("platform_type", sa.Text(), nullable=True),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_tracker_consents")),
    )
    op.create_index(
        op.f("ix_tracker_consents_external_id"), "tracker_consents", ["external_id"], unique=False
    )
    op.create_index(
        op.f("ix_tracker_consents_org_connection_id"),
        "tracker_consents",
        ["org_connection_id"],
        unique=False,
    )
    op.create_table(
        "tracker_fhir_resources",
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=True),
        sa.Column("codes", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("effective_date", sa.Text(), nullable=True),
        sa.Column("body", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "resource_id", name=op.f("pk_tracker_fhir_resources")
        ),
    )
    op.create_index(
        "ix_tracker_fhir_resources_codes",
        "tracker_fhir_resources",
        ["codes"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_tracker_fhir_resources_patient_type",
        "tracker_fhir_resources",
        ["patient_id", "resource_type"],
        unique=False,
    )
    op.create_index(
        "ix_tracker_fhir_resources_type_date",
        "tracker_fhir_resources",
        ["resource_type", "effective_date"],
        unique=False,
    )
    op.create_table(
        "tracker_fhir_versions",
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "resource_id", "content_sha256", name=op.f("pk_tracker_fhir_versions")
        ),
    )
    op.create_table(
        "tracker_ingest_progress",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("sink", sa.Text(), nullable=False),
        sa.Column("file_key", sa.Text(), nullable=False),
        sa.Column("lines_done", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "job_id", "sink", "file_key", name=op.f("pk_tracker_ingest_progress")
        ),
    )
    op.create_table(
        "tracker_job_events",
        sa.Column("event_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_tracker_job_events")),
    )
    op.create_index(
        op.f("ix_tracker_job_events_job_id"), "tracker_job_events", ["job_id"], unique=False
    )
    op.create_table(
        "tracker_jobs",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("org_connection_id", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("brand_id", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("attempts", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("export_requests", sa.Integer(), nullable=False),
        sa.Column("failed_step", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("failure_description", sa.Text(), nullable=True),
        sa.Column("download_links", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("files", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("stats", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("export_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("webhook_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files_expire_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_tracker_jobs")),
        sa.UniqueConstraint("task_id", name=op.f("uq_tracker_jobs_task_id")),
    )
    op.create_index(
        op.f("ix_tracker_jobs_files_expire_at"), "tracker_jobs", ["files_expire_at"], unique=False
    )
    op.create_index(
        op.f("ix_tracker_jobs_org_connection_id"),
        "tracker_jobs",
        ["org_connection_id"],
        unique=False,
    )
    op.create_index(op.f("ix_tracker_jobs_state"), "tracker_jobs", ["state"], unique=False)
    op.create_table(
        "tracker_webhooks",
        sa.Column("webhook_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("org_connection_id", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flag", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("webhook_id", name=op.f("pk_tracker_webhooks")),
    )
    op.create_index(
        op.f("ix_tracker_webhooks_org_connection_id"),
        "tracker_webhooks",
        ["org_connection_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tracker_webhooks_task_id"), "tracker_webhooks", ["task_id"], unique=False
    )
    op.create_table(
        "tracker_widget_events",
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("org_connection_ids", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_key", name=op.f("pk_tracker_widget_events")),
    )
    op.create_index(
        op.f("ix_tracker_widget_events_expires_at"),
        "tracker_widget_events",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    for table in TABLES:  # indexes go with their tables
        op.drop_table(table)
