"""The support requests table (migration 0012_support_requests)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base


class SupportRequest(Base):
    """What a patient asked for from the widget, and the webhook event that announced it."""

    __tablename__ = "support_requests"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    api_mode: Mapped[str] = mapped_column(String(4))
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(String(36))
    """The `patient.request_health_system` webhook event's id."""
    created_at: Mapped[dt.datetime] = mapped_column()

    __table_args__ = (Index("ix_support_requests_org_created", "org_id", "created_at"),)
