"""A token-bucket rate limiter for public endpoints (pure; time is injected).

Per process and in memory: with several API processes behind a load balancer each enforces its own
budget, which is the intent (a guard against floods, not a billing meter).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from ehiconnect.errors import RateLimited

IPV6_CLIENT_PREFIX = 64


def client_key(host: str) -> str:
    """The bucket a client address spends from: an IPv4 address, or an IPv6 address's /64.

    One IPv6 host usually holds a whole /64 and can rotate through it at will.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # a dual-stack socket's IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def refill(tokens: float, elapsed_seconds: float, *, rate: float, burst: float) -> float:
    """The tokens a bucket holds `elapsed_seconds` after it held `tokens`: `rate` per second
    accrue, never beyond `burst`; a clock stepping backwards adds nothing."""
    return min(burst, tokens + max(0.0, elapsed_seconds) * rate)


def retry_after_seconds(tokens: float, *, rate: float) -> int:
    """Whole seconds until a bucket holding `tokens` (< 1) holds one token again."""
    if rate <= 0:
        return 60
    return max(1, math.ceil((1.0 - tokens) / rate))


def refusal(tokens: float, *, rate: float) -> RateLimited:
    wait = retry_after_seconds(tokens, rate=rate)
    return RateLimited(
        f"too many requests from this client; retry after {wait} s", retry_after=wait
    )


class TokenBucketLimiter:
    def __init__(
        self,
        *,
        per_minute: int,
        burst: int,
        now: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._now = now
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_clients = max_clients

    def check(self, client: str) -> None:
        """Spend one token for `client`, or raise RateLimited saying when to come back."""
        now = self._now()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = refill(tokens, now - last, rate=self.rate, burst=self.burst)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            raise refusal(tokens, rate=self.rate)
        self._buckets[client] = (tokens - 1.0, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
