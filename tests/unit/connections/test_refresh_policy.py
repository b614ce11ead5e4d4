"""When an access token is refreshed: early enough, and not before every request."""

from __future__ import annotations

import datetime as dt

from ehiconnect.connections.refresh_policy import RefreshMargin, refresh_due

ISSUED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _first_due_second(lifetime: int, margin: RefreshMargin) -> int:
    expires = ISSUED + dt.timedelta(seconds=lifetime)
    for second in range(lifetime + 1):
        if refresh_due(expires, lifetime, margin, ISSUED + dt.timedelta(seconds=second)):
            return second
    raise AssertionError("never due")


def test_a_short_lived_token_is_used_for_most_of_its_life() -> None:
    margin = RefreshMargin(seconds=300, lifetime_fraction=0.25)
    assert _first_due_second(60, margin) == 45
    assert _first_due_second(300, margin) == 225


def test_a_long_lived_token_keeps_the_configured_margin() -> None:
    margin = RefreshMargin(seconds=300, lifetime_fraction=0.25)
    assert _first_due_second(3600, margin) == 3300


def test_without_a_fraction_or_a_known_lifetime_the_margin_is_the_setting() -> None:
    assert _first_due_second(3600, RefreshMargin(seconds=300)) == 3300
    expires = ISSUED + dt.timedelta(seconds=60)
    # Lifetime unknown: the plain margin applies (a token issued before lifetimes were stored).
    assert refresh_due(expires, None, RefreshMargin(300, 0.25), ISSUED)


def test_a_token_without_expiry_is_never_due() -> None:
    assert not refresh_due(None, None, RefreshMargin(300, 0.25), ISSUED)
