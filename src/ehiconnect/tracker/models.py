"""The tracker's tables (prefix `tracker_`), on its own `TrackerBase`.

They are not in the platform's metadata nor its migrations: the tracker's own migration history
(`ehiconnect/tracker/migrations`, version table `tracker_alembic_version`) creates them.

- `tracker_consents`: the append-only consent log (never updated, never deleted).
- `tracker_widget_events`: a short-lived cache of widget hand-offs (support look-ups, replays).
- `tracker_webhooks`: every webhook received, by `webhook-id` (deduplication), with its flag.
- `tracker_jobs` and `tracker_job_events`: the job ledger and its event log.
- `tracker_ingest_progress`: per job, sink and file, how far ingestion got.
- `tracker_fhir_resources` / `tracker_fhir_versions`: the built-in FHIR store.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ehiconnect.db.models import NAMING_CONVENTION


class TrackerBase(DeclarativeBase):
    """The tracker's metadata, apart from the platform's (same naming of keys and indexes)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[str]: ARRAY(Text),
        list[dict[str, Any]]: JSONB,
    }


class TrackerConsent(TrackerBase):
    __tablename__ = "tracker_consents"

    entry_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # widget | webhook | confirmed | revoked
    event_type: Mapped[str] = mapped_column(Text)
    org_connection_id: Mapped[str] = mapped_column(Text, index=True)
    brand_id: Mapped[str | None] = mapped_column(Text)
    portal_id: Mapped[str | None] = mapped_column(Text)
    endpoint_id: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text, index=True)
    scope: Mapped[str | None] = mapped_column(Text)
    api_mode: Mapped[str | None] = mapped_column(String(4))
    connection_status: Mapped[str | None] = mapped_column(Text)
    platform_type: Mapped[str | None] = mapped_column(Text)
    event_at: Mapped[dt.datetime | None] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column()


class TrackerWidgetEvent(TrackerBase):
    __tablename__ = "tracker_widget_events"

    event_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(Text)
    org_connection_ids: Mapped[list[str]] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class TrackerWebhook(TrackerBase):
    __tablename__ = "tracker_webhooks"

    webhook_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_type: Mapped[str] = mapped_column(Text)
    org_connection_id: Mapped[str | None] = mapped_column(Text, index=True)
    task_id: Mapped[str | None] = mapped_column(Text, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column()
    processed_at: Mapped[dt.datetime | None] = mapped_column()
    flag: Mapped[str | None] = mapped_column(Text)  # why it was not trusted, if it was not


class TrackerJob(TrackerBase):
    __tablename__ = "tracker_jobs"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_connection_id: Mapped[str] = mapped_column(Text, index=True)
    external_id: Mapped[str | None] = mapped_column(Text)
    brand_id: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(24), index=True)
    task_id: Mapped[str | None] = mapped_column(Text, unique=True)
    attempts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    export_requests: Mapped[int] = mapped_column(Integer, default=0)
    failed_step: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_description: Mapped[str | None] = mapped_column(Text)
    download_links: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    files: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column()
    export_requested_at: Mapped[dt.datetime | None] = mapped_column()
    webhook_at: Mapped[dt.datetime | None] = mapped_column()
    polled_at: Mapped[dt.datetime | None] = mapped_column()  # the watchdog's last status poll
    downloaded_at: Mapped[dt.datetime | None] = mapped_column()
    ingested_at: Mapped[dt.datetime | None] = mapped_column()
    notified_at: Mapped[dt.datetime | None] = mapped_column()
    files_expire_at: Mapped[dt.datetime | None] = mapped_column(index=True)


class TrackerJobEvent(TrackerBase):
    __tablename__ = "tracker_job_events"

    event_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[dt.datetime] = mapped_column()
    step: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TrackerIngestProgress(TrackerBase):
    __tablename__ = "tracker_ingest_progress"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sink: Mapped[str] = mapped_column(Text, primary_key=True)
    file_key: Mapped[str] = mapped_column(Text, primary_key=True)
    lines_done: Mapped[int] = mapped_column(BigInteger, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    # How the batches were cut (`Batching.signature`); lines_done counts in that order only.
    batching: Mapped[str | None] = mapped_column(Text)


class TrackerFhirResource(TrackerBase):
    __tablename__ = "tracker_fhir_resources"
    __table_args__ = (
        Index("ix_tracker_fhir_resources_patient_type", "patient_id", "resource_type"),
        Index("ix_tracker_fhir_resources_codes", "codes", postgresql_using="gin"),
        Index("ix_tracker_fhir_resources_type_date", "resource_type", "effective_date"),
    )

    resource_type: Mapped[str] = mapped_column(Text, primary_key=True)
    resource_id: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    content_sha256: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(Text)
    codes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    effective_date: Mapped[str | None] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column()


class TrackerFhirVersion(TrackerBase):
    __tablename__ = "tracker_fhir_versions"

    resource_type: Mapped[str] = mapped_column(Text, primary_key=True)
    resource_id: Mapped[str] = mapped_column(Text, primary_key=True)
    content_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column()
    recorded_at: Mapped[dt.datetime] = mapped_column()
