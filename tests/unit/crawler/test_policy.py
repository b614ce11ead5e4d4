"""Retry and concurrency decisions, with time and randomness passed in."""

from __future__ import annotations

import datetime as dt

import pytest

from ehiconnect.crawler.policy import (
    AdaptiveConcurrency,
    ConcurrencyBounds,
    RetryPolicy,
    parse_retry_after,
)

NOW = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("  12 ", 12.0),
        ("100000", 120.0),  # capped
        ("Sun, 29 Nov 2026 12:00:30 GMT", 30.0),
        ("Sun, 29 Nov 2026 11:59:00 GMT", 0.0),  # in the past
        ("Mon, 30 Nov 2026 12:00:00 GMT", 120.0),  # capped
        ("-5", None),
        ("soon", None),
        ("1.5", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW, cap_seconds=120) == expected


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (None, True),
        (408, True),
        (425, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (501, False),
    ],
)
def test_which_statuses_are_transient(status: int | None, transient: bool) -> None:
    assert RetryPolicy().is_transient(status) is transient


@pytest.mark.parametrize(
    ("attempt", "random_value", "expected"),
    [
        (1, 0.999, 0.4995),
        (2, 0.5, 0.5),
        (3, 1.0, 2.0),
        (10, 1.0, 30.0),  # capped
        (500, 1.0, 30.0),  # no overflow
        (4, 0.0, 0.0),
    ],
)
def test_backoff_grows_exponentially_with_full_jitter_and_a_cap(
    attempt: int, random_value: float, expected: float
) -> None:
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=30.0, jitter=1.0)
    assert policy.backoff_seconds(attempt, lambda: random_value) == pytest.approx(expected)


def test_partial_jitter_keeps_a_floor() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0, jitter=0.25)
    assert policy.backoff_seconds(3, lambda: 0.0) == pytest.approx(3.0)
    assert policy.backoff_seconds(3, lambda: 1.0) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("attempt", "status", "retry_after", "retry", "delay"),
    [
        (1, 503, None, True, 0.25),
        (1, 429, "9", True, 9.0),
        (1, 429, "Sun, 29 Nov 2026 12:00:05 GMT", True, 5.0),
        (4, 500, None, True, 2.0),
        (5, 500, None, False, 0.0),  # max attempts reached
        (1, 404, None, False, 0.0),
        (1, 401, "5", False, 0.0),  # Retry-After does not make a permanent error transient
        (1, None, None, True, 0.25),
    ],
)
def test_retry_decisions(
    attempt: int, status: int | None, retry_after: str | None, retry: bool, delay: float
) -> None:
    decision = RetryPolicy(max_attempts=5, base_seconds=0.5).decide(
        attempt=attempt, status=status, retry_after=retry_after, now=NOW, random=lambda: 0.5
    )
    assert decision.retry is retry
    assert decision.delay_seconds == pytest.approx(delay)
    assert decision.reason


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"jitter": 1.5}, {"base_seconds": -1.0}])
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_concurrency_halves_on_throttle_and_grows_by_one_after_a_run_of_successes() -> None:
    limiter = AdaptiveConcurrency(
        ConcurrencyBounds(minimum=1, maximum=6, initial=4, increase_after_successes=3)
    )
    assert limiter.on_response(429, now=0.0) == 2
    for _ in range(2):
        assert limiter.on_response(200, now=5.0) == 2
    assert limiter.on_response(200, now=5.0) == 3
    for _ in range(30):
        limiter.on_response(200, now=6.0)
    assert limiter.limit == 6  # bounded above


def test_throttles_from_requests_already_in_flight_halve_only_once_per_cooldown() -> None:
    limiter = AdaptiveConcurrency(
        ConcurrencyBounds(minimum=1, maximum=16, initial=16, decrease_cooldown_seconds=1.0)
    )
    for now in (10.0, 10.1, 10.2, 10.9):
        limiter.on_response(503, now=now)
    assert limiter.limit == 8
    limiter.on_response(503, now=11.0)
    assert limiter.limit == 4
    for now in (12.0, 13.0, 14.0, 15.0):
        limiter.on_response(429, now=now)
    assert limiter.limit == 1  # bounded below


def test_errors_that_are_not_throttling_leave_the_limit_and_reset_nothing() -> None:
    limiter = AdaptiveConcurrency(ConcurrencyBounds(initial=4, increase_after_successes=2))
    limiter.on_response(200, now=0.0)
    limiter.on_response(404, now=0.0)
    assert limiter.limit == 4
    assert limiter.on_response(200, now=0.0) == 5


def test_retry_after_pauses_new_requests_until_that_moment() -> None:
    limiter = AdaptiveConcurrency()
    limiter.on_response(429, now=100.0, retry_after=30.0)
    assert limiter.pause_remaining(100.0) == pytest.approx(30.0)
    assert limiter.pause_remaining(120.0) == pytest.approx(10.0)
    assert limiter.pause_remaining(131.0) == 0.0


def test_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="minimum <= initial <= maximum"):
        ConcurrencyBounds(minimum=4, initial=2, maximum=8)
