"""Console accounts and their sessions (migration 0013_console).

One pair of tables serves every console: a `realm` column keeps the platform's accounts apart
from the tracker's, so each product has its own login on the same schema.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ehiconnect.db.models import Base

ROLE_OPERATOR = "operator"
ROLE_CUSTOMER = "customer"


class ConsoleUser(Base):
    """A person who signs in to a console. `org_id` is set for a customer, None for an operator.

    Only an argon2 hash of the password is stored. `failed_logins` counts wrong passwords since
    the last success; reaching the limit sets `locked_until`.
    """

    __tablename__ = "console_users"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    realm: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    org_id: Mapped[str | None] = mapped_column(Text)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column()
    last_login_at: Mapped[dt.datetime | None] = mapped_column()
    disabled_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("realm", "email", name="uq_console_users_realm_email"),)


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random id; the table holds its SHA-256 only.

    `csrf_token` is the synchronizer token every form of the session carries; `api_mode` is the
    mode the person chose to look at.
    """

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("console_users.user_id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(Text)
    api_mode: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[dt.datetime] = mapped_column()
    last_seen_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime] = mapped_column()

    __table_args__ = (Index("ix_console_sessions_expires_at", "expires_at"),)
