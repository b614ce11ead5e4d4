"""When a dispatcher looks for due deliveries again, and how it backs off from a lost database."""

import datetime as dt

import pytest

from ehiconnect.webhooks.schedule import backoff_delay, seconds_until_wake

NOW = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)
SWEEP = 5.0
RECHECK = 0.05


def wake(next_due: dt.datetime | None, *, claimed_nothing: bool = True) -> float:
    return seconds_until_wake(
        NOW,
        next_due,
        sweep_interval=SWEEP,
        claimed_nothing=claimed_nothing,
        contended_recheck=RECHECK,
    )


def test_nothing_pending_sleeps_one_sweep() -> None:
    assert wake(None) == SWEEP


def test_a_retry_due_before_the_sweep_wakes_it_at_its_time() -> None:
    assert wake(NOW + dt.timedelta(seconds=1.25)) == 1.25


def test_a_retry_due_later_than_the_sweep_waits_one_sweep_at_most() -> None:
    assert wake(NOW + dt.timedelta(minutes=5)) == SWEEP


def test_due_work_the_last_claim_got_none_of_is_locked_elsewhere_so_look_again_shortly() -> None:
    assert wake(NOW) == RECHECK
    assert wake(NOW - dt.timedelta(seconds=3)) == RECHECK


def test_due_work_after_a_claim_that_got_some_is_claimed_at_once() -> None:
    assert wake(NOW - dt.timedelta(seconds=1), claimed_nothing=False) == 0.0


def test_the_recheck_never_exceeds_the_sweep() -> None:
    assert seconds_until_wake(
        NOW, NOW, sweep_interval=0.01, claimed_nothing=True, contended_recheck=1.0
    ) == pytest.approx(0.01)


def test_reconnect_waits_follow_the_backoff_and_repeat_its_last() -> None:
    backoff = (0.1, 0.5, 2.0)
    assert [backoff_delay(n, backoff) for n in range(1, 6)] == [0.1, 0.5, 2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="1 or more"):
        backoff_delay(0, backoff)
