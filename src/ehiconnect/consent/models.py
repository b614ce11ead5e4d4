"""Consent flows in progress, and the append-only record of consents given."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base


class ConsentFlow(Base):
    """One authorization attempt, from /bridge/connect to /bridge/callback.

    Looked up by the SHA-256 of `state` (the raw value is never stored); single use (`used_at`);
    the PKCE verifier is encrypted with the token vault.

    A flow the widget started with a `result_challenge` also keeps its result for the widget to
    poll (see `ehiconnect.consent.result`): `result_handle_hash` is the SHA-256 of the widget's
    result handle, `result` the payload the callback page posted (never tokens), `finished_at`
    when it was recorded and `result_read_at` when the one read of it happened.
    """

    __tablename__ = "consent_flows"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(Text, index=True)
    api_mode: Mapped[str] = mapped_column(String(4))
    brand_id: Mapped[str | None] = mapped_column(Text)
    portal_id: Mapped[str | None] = mapped_column(Text)
    endpoint_id: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str | None] = mapped_column(Text)
    widget_origin: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)
    external_state: Mapped[str | None] = mapped_column(Text)
    reconnect_connection_id: Mapped[str | None] = mapped_column(Text)
    requested_scope: Mapped[str] = mapped_column(Text)
    token_endpoint: Mapped[str] = mapped_column(Text)
    verifier_kid: Mapped[str] = mapped_column(Text)
    verifier_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()
    result_handle_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    result_read_at: Mapped[dt.datetime | None] = mapped_column()
