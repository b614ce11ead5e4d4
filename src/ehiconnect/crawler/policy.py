"""When to retry a request to a health system, how long to wait, and how many to run at once.

Both are values plus pure decisions, with time and randomness passed in, so the crawler (the I/O
shell) does the sleeping and tests never do:

- `RetryPolicy.decide(attempt, status, retry_after, now, random)` -> `RetryDecision`
- `AdaptiveConcurrency`: additive-increase / multiplicative-decrease on the number of requests in
  flight to one source; halved on 429/503, +1 after a run of successes, held within bounds, and
  paused until a `Retry-After` moment when the server names one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

TRANSIENT_STATUSES: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
THROTTLE_STATUSES: frozenset[int] = frozenset({429, 503})


def parse_retry_after(value: str | None, now: dt.datetime, *, cap_seconds: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), capped.

    None when absent or unreadable; 0 for a date in the past.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return min(float(text), cap_seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        when = when.replace(tzinfo=dt.UTC)
    return min(max((when - now).total_seconds(), 0.0), cap_seconds)


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_seconds: float
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's `Retry-After` wins when it is given.

    `attempt` counts attempts made so far (1 after the first failure). Delay before attempt n+1 is
    `min(cap, base * 2**(n-1))`, of which a `jitter` fraction is randomized ("full jitter" at 1.0).
    """

    max_attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    jitter: float = 1.0
    retry_after_cap_seconds: float = 120.0
    transient_statuses: frozenset[int] = TRANSIENT_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.base_seconds < 0 or self.cap_seconds < 0:
            raise ValueError("base_seconds and cap_seconds must not be negative")

    def is_transient(self, status: int | None) -> bool:
        """None stands for no response (connection error, read timeout): transient."""
        return status is None or status in self.transient_statuses

    def backoff_seconds(self, attempt: int, random: Callable[[], float]) -> float:
        """Delay after `attempt` failures; `random()` returns a float in [0, 1)."""
        exponent = min(max(attempt - 1, 0), 62)
        ceiling = min(self.cap_seconds, self.base_seconds * math.pow(2, exponent))
        return ceiling * (1.0 - self.jitter) + ceiling * self.jitter * random()

    def decide(
        self,
        *,
        attempt: int,
        status: int | None,
        retry_after: str | None,
        now: dt.datetime,
        random: Callable[[], float],
    ) -> RetryDecision:
        if not self.is_transient(status):
            return RetryDecision(False, 0.0, f"HTTP {status} is not transient")
        if attempt >= self.max_attempts:
            return RetryDecision(False, 0.0, f"gave up after {attempt} attempts")
        waited = parse_retry_after(retry_after, now, cap_seconds=self.retry_after_cap_seconds)
        if waited is not None:
            return RetryDecision(True, waited, "server asked to retry after a delay")
        return RetryDecision(True, self.backoff_seconds(attempt, random), "backoff")


@dataclass(frozen=True)
class ConcurrencyBounds:
    minimum: int = 1
    maximum: int = 8
    initial: int = 4
    increase_after_successes: int = 20
    decrease_cooldown_seconds: float = 1.0
    """Responses to requests already in flight when we halved do not halve again."""
    throttle_statuses: frozenset[int] = THROTTLE_STATUSES

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.initial <= self.maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        if self.increase_after_successes < 1:
            raise ValueError("increase_after_successes must be at least 1")


class AdaptiveConcurrency:
    """AIMD limit on requests in flight to one source. `now` is a monotonic time in seconds."""

    def __init__(self, bounds: ConcurrencyBounds | None = None) -> None:
        self.bounds = bounds or ConcurrencyBounds()
        self.limit = self.bounds.initial
        self._successes = 0
        self._last_decrease: float | None = None
        self._paused_until = 0.0

    def on_response(self, status: int | None, now: float, retry_after: float | None = None) -> int:
        """Record a finished request; returns the new limit."""
        if status is not None and status in self.bounds.throttle_statuses:
            return self.on_throttle(now, retry_after)
        if status is not None and status < 400:
            return self.on_success()
        return self.limit

    def on_success(self) -> int:
        self._successes += 1
        if self._successes >= self.bounds.increase_after_successes:
            self._successes = 0
            self.limit = min(self.limit + 1, self.bounds.maximum)
        return self.limit

    def on_throttle(self, now: float, retry_after: float | None = None) -> int:
        self._successes = 0
        if retry_after is not None and retry_after > 0:
            self._paused_until = max(self._paused_until, now + retry_after)
        cooled = (
            self._last_decrease is None
            or now - self._last_decrease >= self.bounds.decrease_cooldown_seconds
        )
        if cooled:
            self.limit = max(self.limit // 2, self.bounds.minimum)
            self._last_decrease = now
        return self.limit

    def pause_remaining(self, now: float) -> float:
        """Seconds before any new request may start (a server-given Retry-After)."""
        return max(self._paused_until - now, 0.0)
