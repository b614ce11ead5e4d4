"""Export tasks and their staging area.

A task's crawl stages what it fetched in the database: resources in `export_items` (one row per
type/id, so a resumed crawl cannot duplicate one), attachments as blobs whose rows are in
`export_attachments`, finished steps (a search page, a hydration pass) in `export_steps`, and
failures in `export_errors`. Packaging streams the staging area into one NDJSON file; the staging
rows are then deleted. This is what lets a worker killed mid-export be replaced by another that
continues where the first stopped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base
from ehiconnect.vocabulary import ExportPhase


class ExportTask(Base):
    __tablename__ = "export_tasks"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(Text, index=True)
    org_connection_id: Mapped[str] = mapped_column(Text, index=True)
    api_mode: Mapped[str] = mapped_column(String(4))
    # pending → success | failed | cancelled; success → expired after retention; success,
    # failed or expired → deleted by the customer (Bulk Data DELETE).
    status: Mapped[str] = mapped_column(String(16))
    phase: Mapped[str] = mapped_column(String(16), default=ExportPhase.QUEUED)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column()
    started_at: Mapped[dt.datetime | None] = mapped_column()
    deadline_at: Mapped[dt.datetime] = mapped_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    runs: Mapped[int] = mapped_column(Integer, default=0)
    """Runs started, including those killed with their worker."""
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Runs that ended in an unexpected error: the export's own retry budget."""
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    """The procrastinate job meant to drive the task (the reconciler watches it)."""
    file_id: Mapped[str | None] = mapped_column(Text)
    file_key: Mapped[str | None] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error_key: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(Integer, default=0)


class ExportItem(Base):
    __tablename__ = "export_items"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_type: Mapped[str] = mapped_column(Text, primary_key=True)
    resource_id: Mapped[str] = mapped_column(Text, primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class ExportAttachment(Base):
    __tablename__ = "export_attachments"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    binary_id: Mapped[str] = mapped_column(Text, primary_key=True)
    source_url: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text)
    blob_key: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class ExportStep(Base):
    __tablename__ = "export_steps"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    step: Mapped[str] = mapped_column(Text, primary_key=True)
    # For a paged search: the next page's URL still to fetch (None once the search is done).
    cursor: Mapped[str | None] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ExportError(Base):
    __tablename__ = "export_errors"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    error_id: Mapped[str] = mapped_column(Text, primary_key=True)
    outcome: Mapped[dict[str, Any]] = mapped_column()
