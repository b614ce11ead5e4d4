"""The token vault's table: a connection's OAuth tokens, encrypted at rest."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, func
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
