"""Console accounts: creation, sign-in with lockout, unlock. Every outcome is audit-logged.

    user = await add_user(session, clock, realm="platform", email=..., password=..., role=...)
    outcome = await sign_in(session, clock, realm="platform", email=..., password=...)

A wrong password counts against the account; at `LockoutPolicy.max_failures` the account is
locked for `LockoutPolicy.lock_for`, and while locked even the right password is refused. The
counter and the lock live in PostgreSQL, so every API process of a fleet sees them.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import audit
from ehiconnect.clock import Clock
from ehiconnect.consolekit.models import ROLE_CUSTOMER, ROLE_OPERATOR, ConsoleUser
from ehiconnect.consolekit.passwords import (
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from ehiconnect.errors import Conflict, InvalidRequest, NotFound

MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    lock_for: dt.timedelta = dt.timedelta(minutes=15)


class SignInResult(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"


@dataclass(frozen=True)
class SignInOutcome:
    result: SignInResult
    user: ConsoleUser | None = None
    locked_until: dt.datetime | None = None


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if not value or len(value) > MAX_EMAIL_LENGTH or "@" not in value.strip("@"):
        raise InvalidRequest("give the account's email address, like ops@example.org")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidRequest("an email address has no spaces or control characters")
    return value


async def add_user(
    session: AsyncSession,
    clock: Clock,
    *,
    realm: str,
    email: str,
    password: str,
    role: str,
    org_id: str | None,
    actor: str = "cli",
) -> ConsoleUser:
    """A new account; an operator has no org_id, a customer exactly one."""
    if role not in (ROLE_OPERATOR, ROLE_CUSTOMER):
        raise InvalidRequest(f"role must be {ROLE_OPERATOR} or {ROLE_CUSTOMER}")
    if (role == ROLE_OPERATOR) != (org_id is None):
        raise InvalidRequest("an operator account has no organization; a customer account has one")
    problem = password_problem(password)
    if problem is not None:
        raise InvalidRequest(problem)
    address = normalize_email(email)
    taken = await session.scalar(
        select(func.count())
        .select_from(ConsoleUser)
        .where(ConsoleUser.realm == realm, ConsoleUser.email == address)
    )
    if taken:
        raise Conflict(f"an account for {address} exists already")
    user = ConsoleUser(
        user_id=str(uuid.uuid4()),
        realm=realm,
        email=address,
        password_hash=hash_password(password),
        role=role,
        org_id=org_id,
        failed_logins=0,
        created_at=clock.now(),
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        clock,
        actor=actor,
        action="console.user_added",
        org_id=org_id,
        detail={"realm": realm, "user_id": user.user_id, "role": role},
    )
    return user


async def find_user(session: AsyncSession, realm: str, email: str) -> ConsoleUser | None:
    try:
        address = normalize_email(email)
    except InvalidRequest:
        return None
    return await session.scalar(
        select(ConsoleUser)
        .where(ConsoleUser.realm == realm, ConsoleUser.email == address)
        .with_for_update()
    )


async def sign_in(
    session: AsyncSession,
    clock: Clock,
    *,
    realm: str,
    email: str,
    password: str,
    policy: LockoutPolicy | None = None,
) -> SignInOutcome:
    """Check a password against the account, counting failures and locking at the limit.

    The account row is locked for the check, so concurrent guesses on several processes are
    all counted.
    """
    policy = policy or LockoutPolicy()
    now = clock.now()
    user = await find_user(session, realm, email)
    if user is None or user.disabled_at is not None:
        verify_password(None, password)  # the same time as a wrong password
        await audit.record(
            session,
            clock,
            actor="console:anonymous",
            action="console.login_failed",
            detail={"realm": realm, "reason": "unknown_account"},
        )
        return SignInOutcome(SignInResult.WRONG)
    actor = f"console:{user.user_id}"
    if user.locked_until is not None and user.locked_until > now:
        await audit.record(
            session,
            clock,
            actor=actor,
            action="console.login_refused",
            org_id=user.org_id,
            detail={"realm": realm, "reason": "locked"},
        )
        return SignInOutcome(SignInResult.LOCKED, user, user.locked_until)
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        detail: dict[str, object] = {"realm": realm, "failed_logins": user.failed_logins}
        if user.failed_logins >= policy.max_failures:
            user.locked_until = now + policy.lock_for
            user.failed_logins = 0
            detail["locked_until"] = user.locked_until.isoformat()
            await audit.record(
                session,
                clock,
                actor=actor,
                action="console.locked",
                org_id=user.org_id,
                detail=detail,
            )
            return SignInOutcome(SignInResult.LOCKED, user, user.locked_until)
        await audit.record(
            session,
            clock,
            actor=actor,
            action="console.login_failed",
            org_id=user.org_id,
            detail=detail,
        )
        return SignInOutcome(SignInResult.WRONG, user)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    await audit.record(
        session,
        clock,
        actor=actor,
        action="console.login",
        org_id=user.org_id,
        detail={"realm": realm},
    )
    return SignInOutcome(SignInResult.OK, user)


async def unlock(session: AsyncSession, clock: Clock, *, realm: str, email: str) -> ConsoleUser:
    user = await find_user(session, realm, email)
    if user is None:
        raise NotFound(f"no {realm} console account has the email {email.strip()}")
    user.failed_logins = 0
    user.locked_until = None
    await audit.record(
        session,
        clock,
        actor="cli",
        action="console.unlocked",
        org_id=user.org_id,
        detail={"realm": realm, "user_id": user.user_id},
    )
    return user


async def list_users(session: AsyncSession, realm: str) -> list[ConsoleUser]:
    rows = await session.scalars(
        select(ConsoleUser).where(ConsoleUser.realm == realm).order_by(ConsoleUser.email)
    )
    return list(rows.all())
