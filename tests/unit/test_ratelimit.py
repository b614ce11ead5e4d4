from __future__ import annotations

import pytest

from ehiconnect.api.ratelimit import TokenBucketLimiter
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
