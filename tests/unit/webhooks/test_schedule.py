import datetime as dt
import random

import pytest

from ehiconnect.settings import DEFAULT_RETRY_SCHEDULE_SECONDS
from ehiconnect.webhooks import schedule
from ehiconnect.webhooks.schedule import AttemptOutcome

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


class NoJitter:
    def uniform(self, a: float, b: float) -> float:
        return 0.0


class MaxJitter:
    def uniform(self, a: float, b: float) -> float:
        return b


def test_default_schedule_is_the_documented_one() -> None:
    delays = [
        schedule.retry_delay(n, NoJitter()) for n in range(len(DEFAULT_RETRY_SCHEDULE_SECONDS))
    ]
    hours = dt.timedelta(hours=1)
    assert delays == [
        dt.timedelta(0),
        dt.timedelta(seconds=5),
        dt.timedelta(minutes=5),
        dt.timedelta(minutes=30),
        2 * hours,
        5 * hours,
        10 * hours,
        10 * hours,
    ]


def test_no_attempt_after_the_last_one() -> None:
    assert schedule.next_attempt_at(8, NOW, NoJitter()) is None
    assert schedule.next_attempt_at(7, NOW, NoJitter()) == NOW + dt.timedelta(hours=10)


def test_jitter_spreads_delays_within_the_fraction() -> None:
    rng = random.Random(7)
    seen = {schedule.retry_delay(3, rng, jitter_fraction=0.2) for _ in range(50)}
    assert len(seen) > 10
    assert all(dt.timedelta(minutes=24) <= d <= dt.timedelta(minutes=36) for d in seen if d)
    assert schedule.retry_delay(1, MaxJitter(), jitter_fraction=0.2) == dt.timedelta(seconds=6)


def test_first_attempt_is_immediate_even_with_jitter() -> None:
    assert schedule.next_attempt_at(0, NOW, MaxJitter()) == NOW


def test_custom_schedule_is_data() -> None:
    assert schedule.next_attempt_at(1, NOW, NoJitter(), schedule=(0, 1)) == NOW + dt.timedelta(
        seconds=1
    )
    assert schedule.next_attempt_at(2, NOW, NoJitter(), schedule=(0, 1)) is None


def test_negative_attempts_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        schedule.retry_delay(-1, NoJitter())


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, AttemptOutcome.SUCCEEDED),
        (204, AttemptOutcome.SUCCEEDED),
        (299, AttemptOutcome.SUCCEEDED),
        (301, AttemptOutcome.FAILED),
        (404, AttemptOutcome.FAILED),
        (410, AttemptOutcome.GONE),
        (500, AttemptOutcome.FAILED),
        (None, AttemptOutcome.FAILED),
    ],
)
def test_classify_attempt(status: int | None, outcome: AttemptOutcome) -> None:
    assert schedule.classify_attempt(status) is outcome


def test_endpoint_is_disabled_only_after_failing_for_the_whole_window() -> None:
    window = dt.timedelta(days=5)
    assert not schedule.should_disable_endpoint(None, NOW, disable_after=window)
    since = NOW - dt.timedelta(days=4, hours=23)
    assert not schedule.should_disable_endpoint(since, NOW, disable_after=window)
    assert schedule.should_disable_endpoint(NOW - window, NOW, disable_after=window)
