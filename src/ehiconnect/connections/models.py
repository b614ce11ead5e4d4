"""The token vault's table: a connection's OAuth tokens, encrypted at rest."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base


class ConnectionTokens(Base):
    """AES-GCM ciphertexts of a connection's tokens, bound to the connection id (AAD)."""

    __tablename__ = "connection_tokens"

    org_connection_id: Mapped[str] = mapped_column(
        ForeignKey("org_connections.org_connection_id", ondelete="CASCADE"), primary_key=True
    )
    kid: Mapped[str] = mapped_column(Text)
    access_token_ct: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_type: Mapped[str] = mapped_column(String(32), default="Bearer")
    access_expires_at: Mapped[dt.datetime | None] = mapped_column()
    access_lifetime_seconds: Mapped[int | None] = mapped_column(Integer)
    """`expires_in` of the token response: the refresh margin scales to it."""
    refresh_failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class ConsentRecord(Base):
    """An auditable consent artifact: what the patient granted, to whom, when. Never updated."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    recorded_at: Mapped[dt.datetime] = mapped_column()
    event: Mapped[str] = mapped_column(Text)  # a ConsentEvent
    org_id: Mapped[str] = mapped_column(Text, index=True)
    org_connection_id: Mapped[str] = mapped_column(Text, index=True)
    api_mode: Mapped[str] = mapped_column(String(4))
    brand_id: Mapped[str | None] = mapped_column(Text)
    portal_id: Mapped[str | None] = mapped_column(Text)
    endpoint_id: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)
    external_state: Mapped[str | None] = mapped_column(Text)
    requested_scope: Mapped[str | None] = mapped_column(Text)
    granted_scope: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
