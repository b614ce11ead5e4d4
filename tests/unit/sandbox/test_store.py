from __future__ import annotations

import datetime as dt

from ehiconnect.sandbox.scopes import parse_scopes
from ehiconnect.sandbox.store import (
    FORGET_AFTER,
    AccessToken,
    AuthorizationCode,
    Grant,
    InMemoryAuthStore,
    PendingAuthorization,
    RefreshToken,
)

NOW = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
SCOPE = parse_scopes("launch/patient patient/*.rs")


def _code(expires_at: dt.datetime) -> AuthorizationCode:
    return AuthorizationCode("harbor", "app", "http://127.0.0.1/cb", "c" * 43, "amy", "p1",
                             SCOPE, expires_at)  # fmt: skip


def test_taking_a_code_twice_reports_the_replay() -> None:
    store = InMemoryAuthStore()
    value = store.add_code(_code(NOW + dt.timedelta(seconds=60)), NOW)
    first, second = store.take_code(value), store.take_code(value)
    assert first is not None
    assert second is not None
    assert (first.used, second.used) == (False, True)
    assert store.take_code("unknown") is None


def test_expired_pending_logins_are_gone() -> None:
    store = InMemoryAuthStore()
    pending = PendingAuthorization("r1", "harbor", "app", "http://127.0.0.1/cb", "s", SCOPE,
                                   "c" * 43, NOW + dt.timedelta(minutes=30))  # fmt: skip
    store.add_pending(pending, NOW)
    assert store.get_pending("r1", NOW + dt.timedelta(minutes=29)) is pending
    assert store.get_pending("r1", NOW + dt.timedelta(minutes=30)) is None


def test_long_expired_codes_are_forgotten_when_new_ones_arrive() -> None:
    store = InMemoryAuthStore()
    old = store.add_code(_code(NOW), NOW)
    store.add_code(_code(NOW + FORGET_AFTER * 3), NOW + FORGET_AFTER * 2)
    assert store.take_code(old) is None


def test_revoking_a_grant_stops_its_tokens() -> None:
    store = InMemoryAuthStore()
    store.add_grant(Grant("g1", "harbor", "app", "amy", "p1", SCOPE))
    access = store.add_access_token(AccessToken("g1", SCOPE, NOW + dt.timedelta(hours=1)), NOW)
    refresh = store.add_refresh_token(RefreshToken("g1", SCOPE, None))
    store.revoke_grant("g1")
    token = store.get_access_token(access)
    assert token is not None
    assert token.revoked
    assert not store.retire_refresh_token(refresh)


def test_a_jti_is_remembered_until_its_assertion_expires() -> None:
    store = InMemoryAuthStore()
    assert store.remember_jti("app", "j1", NOW + dt.timedelta(minutes=5), NOW)
    assert not store.remember_jti("app", "j1", NOW + dt.timedelta(minutes=5), NOW)
    assert store.remember_jti("other-app", "j1", NOW + dt.timedelta(minutes=5), NOW)
