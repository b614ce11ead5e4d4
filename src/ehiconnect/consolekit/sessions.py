"""Console sessions in PostgreSQL: any API process can read a session another one created.

The browser's cookie holds 32 random bytes (base64url); the table holds their SHA-256, so a
read of the table cannot be replayed as a cookie. Each session has its own CSRF token, the
synchronizer token every form carries. A session ends after `idle` without a request, after
`lifetime` in any case, or at logout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.clock import Clock
from ehiconnect.consolekit.models import ConsoleSession, ConsoleUser

MAX_COOKIE_LENGTH = 128
TOUCH_EVERY = dt.timedelta(minutes=1)
"""`last_seen_at` is written at most this often, not on every page."""


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta = dt.timedelta(hours=2)
    lifetime: dt.timedelta = dt.timedelta(hours=12)


@dataclass(frozen=True)
class SignedIn:
    """The person behind a request and their session."""

    user: ConsoleUser
    session: ConsoleSession


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    if not given or len(given) > MAX_COOKIE_LENGTH:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))


async def open_session(
    db: AsyncSession,
    clock: Clock,
    user: ConsoleUser,
    *,
    api_mode: str = "test",
    policy: SessionPolicy | None = None,
) -> str:
    """A new session for `user`; returns the cookie value (shown to nobody else)."""
    policy = policy or SessionPolicy()
    now = clock.now()
    session_id = secrets.token_urlsafe(32)
    db.add(
        ConsoleSession(
            id_hash=_hash(session_id),
            user_id=user.user_id,
            csrf_token=secrets.token_urlsafe(32),
            api_mode=api_mode,
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.lifetime,
        )
    )
    # Expired sessions of anyone go with each login: the table stays small without a job.
    await db.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    await db.flush()
    return session_id


async def load_session(
    db: AsyncSession,
    clock: Clock,
    cookie: str | None,
    *,
    realm: str,
    policy: SessionPolicy | None = None,
) -> SignedIn | None:
    """The session a cookie names, if it is alive and its account may still sign in."""
    if not cookie or len(cookie) > MAX_COOKIE_LENGTH or not cookie.isascii():
        return None
    policy = policy or SessionPolicy()
    now = clock.now()
    row = (
        await db.execute(
            select(ConsoleSession, ConsoleUser)
            .join(ConsoleUser, ConsoleUser.user_id == ConsoleSession.user_id)
            .where(ConsoleSession.id_hash == _hash(cookie), ConsoleUser.realm == realm)
        )
    ).first()
    if row is None:
        return None
    session, user = row
    if (
        session.expires_at <= now
        or session.last_seen_at + policy.idle <= now
        or user.disabled_at is not None
    ):
        await db.delete(session)
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        session.last_seen_at = now
    return SignedIn(user=user, session=session)


async def close_session(db: AsyncSession, cookie: str | None) -> None:
    if cookie and len(cookie) <= MAX_COOKIE_LENGTH and cookie.isascii():
        await db.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == _hash(cookie)))


async def close_sessions_of(db: AsyncSession, user_id: str) -> None:
    """Sign an account out everywhere (after a password change or a lock by an operator)."""
    await db.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))
