"""The result handle: its challenge and hash, and what one read of it gets (pure)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets

import pytest

from ehiconnect.consent.pkce import s256_challenge
from ehiconnect.consent.result import (
    HandleState,
    Pending,
    Ready,
    challenge_hash,
    failure_result,
    handle_hash,
    read_outcome,
    success_result,
)
from ehiconnect.errors import ApiError, InvalidRequest

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
APP = "https://app.example.com"
RFC_7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def new_handle() -> str:
    """What the widget makes: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def a_success() -> dict[str, object]:
    return success_result(
        org_connection_id="0b6f1d7e-3c41-4b8e-9a55-1c2d3e4f5a6b",
        connection_status="authorized",
        platform_type="epic",
        brand_id="b1",
        portal_id="p1",
        endpoint_id="e1",
        api_mode="test",
    )


def state(**changes: object) -> HandleState:
    values: dict[str, object] = {
        "widget_origin": APP,
        "expires_at": T0 + dt.timedelta(minutes=20),
        "result": None,
        "finished_at": None,
        "read_at": None,
    }
    values.update(changes)
    return HandleState(**values)  # type: ignore[arg-type]


def error_of(handle_state: HandleState, *, origin: str = APP, now: dt.datetime = T0) -> ApiError:
    with pytest.raises(ApiError) as caught:
        read_outcome(handle_state, origin=origin, now=now)
    return caught.value


# ---- the handle and its challenge ---------------------------------------------------------------


def test_the_challenge_of_a_handle_and_the_handle_hash_to_the_same_value() -> None:
    # The widget computes the challenge with Web Crypto exactly as PKCE's S256 does.
    handle = new_handle()
    assert challenge_hash(s256_challenge(handle)) == handle_hash(handle)
    assert challenge_hash(RFC_7636_CHALLENGE) == handle_hash(RFC_7636_VERIFIER)
    assert len(handle_hash(handle)) == 64


def test_a_handle_is_not_its_own_challenge() -> None:
    handle = new_handle()
    assert challenge_hash(handle) != handle_hash(handle)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "short",
        RFC_7636_CHALLENGE + "=",  # padded
        RFC_7636_CHALLENGE[:-1],  # 42 characters
        RFC_7636_CHALLENGE[:-1] + "+",  # base64, not base64url
        RFC_7636_CHALLENGE[:-1] + "N",  # not the canonical encoding of any 32 bytes
        "é" * 43,
    ],
)
def test_malformed_challenges_and_handles_are_refused(value: str) -> None:
    with pytest.raises(InvalidRequest, match="result_challenge"):
        challenge_hash(value)
    with pytest.raises(InvalidRequest, match="result_handle"):
        handle_hash(value)


# ---- reading ------------------------------------------------------------------------------------


def test_before_the_flow_finishes_a_read_is_pending_with_the_time_left() -> None:
    outcome = read_outcome(state(), origin=APP, now=T0 + dt.timedelta(seconds=30.5))

    assert outcome == Pending(expires_in=1170)
    assert outcome.as_data() == {"status": "pending", "expires_in": 1170}


def test_a_finished_flow_hands_out_exactly_its_result() -> None:
    stored = {**a_success(), "scope": "patient/*.rs"}  # nothing beyond the widget's fields
    outcome = read_outcome(
        state(result=stored, finished_at=T0), origin=APP, now=T0 + dt.timedelta(seconds=1)
    )

    assert outcome == Ready(a_success())


def test_a_failed_flow_hands_out_the_error_connection_failed_carries() -> None:
    failure = failure_result("access_denied", "the patient declined to share their records")

    outcome = read_outcome(state(result=failure, finished_at=T0), origin=APP, now=T0)

    assert outcome == Ready(failure)


def test_a_used_handle_is_refused_even_before_expiry() -> None:
    used = state(result=None, finished_at=T0, read_at=T0 + dt.timedelta(seconds=2))

    error = error_of(used, now=T0 + dt.timedelta(seconds=3))

    assert (error.status, error.code) == (410, "result_handle_used")


def test_an_unfinished_flow_past_its_lifetime_has_expired() -> None:
    error = error_of(state(), now=T0 + dt.timedelta(minutes=20))

    assert (error.status, error.code) == (410, "result_expired")


def test_a_result_finished_just_before_expiry_stays_readable_for_a_little_while() -> None:
    late = state(result=a_success(), finished_at=T0 + dt.timedelta(minutes=19, seconds=59))

    kept = read_outcome(late, origin=APP, now=T0 + dt.timedelta(minutes=21))
    assert isinstance(kept, Ready)
    error = error_of(late, now=T0 + dt.timedelta(minutes=22))
    assert error.code == "result_expired"


def test_only_the_origin_that_started_the_flow_may_read_it() -> None:
    finished = state(result=a_success(), finished_at=T0)

    error = error_of(finished, origin="https://evil.example")

    assert (error.status, error.code) == (403, "origin_not_allowed")
    # Origins compare as origins: scheme and host case do not matter, the port does.
    assert isinstance(read_outcome(finished, origin="HTTPS://App.Example.com", now=T0), Ready)
    assert error_of(finished, origin="https://app.example.com:8443").code == "origin_not_allowed"
    assert error_of(finished, origin="http://app.example.com").code == "origin_not_allowed"


def test_a_flow_whose_page_origin_is_unknown_is_readable_from_any_origin_the_caller_allowed() -> (
    None
):
    # Without a Referer the flow has no origin; the route still requires a registered one.
    outcome = read_outcome(
        state(widget_origin=None, result=a_success(), finished_at=T0),
        origin="https://other.example",
        now=T0,
    )

    assert isinstance(outcome, Ready)


def test_the_origin_is_checked_before_anything_about_the_handle_is_told() -> None:
    used = state(finished_at=T0, read_at=T0)

    assert error_of(used, origin="https://evil.example").code == "origin_not_allowed"
