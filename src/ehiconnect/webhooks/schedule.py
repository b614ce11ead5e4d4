"""When to retry a delivery, when to give up on an endpoint, when a dispatcher should look again:
pure decisions over values.

The schedule is data (DESIGN §2): attempt 1 immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
10 h after the previous attempt, each delay spread by a jitter so that a receiver coming back up
is not hit by every retry at the same second.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Protocol

from ehiconnect.settings import DEFAULT_JITTER_FRACTION, DEFAULT_RETRY_SCHEDULE_SECONDS


class UniformRandom(Protocol):
    """What the schedule needs of randomness (`random.Random` fits)."""

    def uniform(self, a: float, b: float) -> float: ...


def retry_delay(
    attempts_made: int,
    rng: UniformRandom,
    *,
    schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE_SECONDS,
    jitter_fraction: float = DEFAULT_JITTER_FRACTION,
) -> dt.timedelta | None:
    """Delay before the next attempt after `attempts_made` attempts, or None when none is left.

    `schedule[n]` is the delay before attempt n+1, so `attempts_made` indexes the next delay.
    """
    if attempts_made < 0:
        raise ValueError(f"attempts_made must be 0 or more, got {attempts_made}")
    if attempts_made >= len(schedule):
        return None
    base = schedule[attempts_made]
    spread = rng.uniform(-jitter_fraction, jitter_fraction) if base > 0 else 0.0
    return dt.timedelta(seconds=max(0.0, base * (1 + spread)))


def next_attempt_at(
    attempts_made: int,
    now: dt.datetime,
    rng: UniformRandom,
    *,
    schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE_SECONDS,
    jitter_fraction: float = DEFAULT_JITTER_FRACTION,
) -> dt.datetime | None:
    """When the next attempt is due, or None when the delivery has used up its schedule."""
    delay = retry_delay(attempts_made, rng, schedule=schedule, jitter_fraction=jitter_fraction)
    return None if delay is None else now + delay


class AttemptOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    GONE = "gone"  # 410: the receiver asks us to stop; the endpoint is disabled at once
    FAILED = "failed"  # anything else: retry on the schedule


def classify_attempt(status_code: int | None) -> AttemptOutcome:
    """What an attempt's HTTP status means; None is a transport error or timeout."""
    if status_code is not None and 200 <= status_code < 300:
        return AttemptOutcome.SUCCEEDED
    if status_code == 410:
        return AttemptOutcome.GONE
    return AttemptOutcome.FAILED


def should_disable_endpoint(
    failing_since: dt.datetime | None, now: dt.datetime, *, disable_after: dt.timedelta
) -> bool:
    """True when an endpoint has failed every attempt since `failing_since` for too long.

    `failing_since` is the time of the first failed attempt after the endpoint's last success
    (None while the endpoint is healthy).
    """
    return failing_since is not None and now - failing_since >= disable_after


def seconds_until_wake(
    now: dt.datetime,
    next_due: dt.datetime | None,
    *,
    sweep_interval: float,
    claimed_nothing: bool,
    contended_recheck: float,
) -> float:
    """How long a dispatcher may sleep before it looks for due deliveries again.

    `next_due` is the earliest `next_attempt_at` of pending deliveries on enabled endpoints (a
    claimed delivery's is the end of its lease), or None. The sleep never exceeds the sweep
    interval, the bound on what a missed notification can cost. A delivery already due that the
    last claim did not get is locked by another worker's claim: look again shortly rather than
    spin.
    """
    if next_due is None:
        return sweep_interval
    wait = (next_due - now).total_seconds()
    if wait > 0:
        return min(wait, sweep_interval)
    return min(contended_recheck, sweep_interval) if claimed_nothing else 0.0


def backoff_delay(failures: int, backoff: Sequence[float]) -> float:
    """The wait before the next retry after `failures` consecutive failures (1 or more)."""
    if failures < 1:
        raise ValueError(f"failures must be 1 or more, got {failures}")
    return backoff[min(failures, len(backoff)) - 1]
