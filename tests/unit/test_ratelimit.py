from __future__ import annotations

import pytest

from ehiconnect.api.ratelimit import TokenBucketLimiter, refill, retry_after_seconds
from ehiconnect.errors import RateLimited


class Ticker:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill_at_the_rate() -> None:
    clock = Ticker()
    limiter = TokenBucketLimiter(per_minute=60, burst=2, now=clock)
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("a")
    assert refused.value.retry_after == 1
    limiter.check("b")  # clients have separate budgets
    clock.t = 1.0
    limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_forgets_the_oldest_clients_beyond_its_bound() -> None:
    clock = Ticker()
    limiter = TokenBucketLimiter(per_minute=60, burst=1, now=clock, max_clients=2)
    limiter.check("a")
    limiter.check("b")
    limiter.check("c")  # evicts "a"
    limiter.check("a")  # a fresh bucket again
    with pytest.raises(RateLimited):
        limiter.check("c")


def test_refill_accrues_at_the_rate_up_to_the_burst() -> None:
    assert refill(0.5, 2.0, rate=0.25, burst=3.0) == 1.0
    assert refill(2.5, 10.0, rate=1.0, burst=3.0) == 3.0  # never beyond the burst
    assert refill(0.5, -5.0, rate=1.0, burst=3.0) == 0.5  # a clock stepping back adds nothing


def test_retry_after_is_the_whole_seconds_until_one_token() -> None:
    assert retry_after_seconds(0.0, rate=0.1) == 10
    assert retry_after_seconds(0.95, rate=0.1) == 1
    assert retry_after_seconds(0.999, rate=100.0) == 1  # never "retry after 0 s"
    assert retry_after_seconds(0.0, rate=0.0) == 60
