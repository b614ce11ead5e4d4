"""Tables of the webhooks feature: endpoints and their secrets, the event outbox, deliveries and
their attempt log. Created by migration 0002_webhooks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base

ENDPOINT_ENABLED = "enabled"
ENDPOINT_DISABLED = "disabled"

DELIVERY_PENDING = "pending"
DELIVERY_SUCCEEDED = "succeeded"
DELIVERY_FAILED = "failed"
DELIVERY_CANCELLED = "cancelled"


class WebhookEndpoint(Base):
    """Where an organization receives events of one mode. No event types = every type."""

    __tablename__ = "webhook_endpoints"

    endpoint_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    api_mode: Mapped[str] = mapped_column(String(4))
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(Text, default=ENDPOINT_ENABLED)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[dt.datetime | None] = mapped_column()
    # First failed attempt since the last success; None while healthy.
    failing_since: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint("org_id", "url", name="uq_webhook_endpoints_org_id_url"),
        Index("ix_webhook_endpoints_org_mode", "org_id", "api_mode"),
    )


class WebhookEndpointSecret(Base):
    """A signing secret sealed by the vault; several are active during a rotation's grace."""

    __tablename__ = "webhook_endpoint_secrets"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.endpoint_id", ondelete="CASCADE"), index=True
    )
    # AES-GCM through the token vault; the plaintext `whsec_…` is never stored.
    secret_kid: Mapped[str] = mapped_column(Text)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime | None] = mapped_column()


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change that causes it."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    api_mode: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column()

    __table_args__ = (
        Index("ix_webhook_events_org_mode_created", "org_id", "api_mode", "created_at", "event_id"),
    )


class WebhookDelivery(Base):
    """One event to one endpoint; driven by `next_attempt_at` while pending."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.event_id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.endpoint_id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(Text, default=DELIVERY_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    # Set when a worker claims the delivery; its result is recorded only under the same token.
    claim_token: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """The log of one HTTP attempt. Holds no request body (it may carry patient identifiers)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(String(36))
    endpoint_id: Mapped[str] = mapped_column(String(36))
    attempt_number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[dt.datetime] = mapped_column(index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
