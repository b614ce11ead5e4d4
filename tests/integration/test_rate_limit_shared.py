"""The public rate limit is one budget per client across every API process of a fleet (issue 12):
its buckets live in PostgreSQL, spent by one atomic statement; while the database is away each
process falls back to its own in-memory buckets."""

from __future__ import annotations

import datetime as dt
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ehiconnect.api.app import create_app
from ehiconnect.api.ratelimit_store import SharedRateLimiter
from ehiconnect.db.database import Database
from ehiconnect.db.rate_limits import spend_token, sweep_full_buckets
from ehiconnect.errors import RateLimited
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import serve_in_thread
from tests.integration.conftest import make_org


def _limited(settings: Settings, *, per_minute: int, burst: int) -> Settings:
    settings.api.public_rate_limit_per_minute = per_minute
    settings.api.public_rate_limit_burst = burst
    return settings


async def test_two_api_processes_share_one_budget_per_client(
    runtime: Runtime, settings: Settings
) -> None:
    org = await make_org(runtime)
    params = {"public_id": org.keys["test"].public_id}
    limited = _limited(settings, per_minute=6, burst=3)
    with (
        serve_in_thread(create_app(limited)) as first,
        serve_in_thread(create_app(limited)) as second,
        httpx.Client(base_url=first.url, timeout=10) as to_first,
        httpx.Client(base_url=second.url, timeout=10) as to_second,
    ):
        # A round-robin balancer: each process sees every other request of the client.
        statuses = [
            (to_first if i % 2 == 0 else to_second).get("/v1/bridge/org", params=params)
            for i in range(6)
        ]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429, 429]
        refused = statuses[3]
        assert refused.json()["error"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1


async def test_concurrent_requests_on_both_processes_never_spend_a_token_twice(
    runtime: Runtime, settings: Settings
) -> None:
    org = await make_org(runtime)
    params = {"public_id": org.keys["test"].public_id}
    limited = _limited(settings, per_minute=1, burst=5)  # refills one token a minute
    with (
        serve_in_thread(create_app(limited)) as first,
        serve_in_thread(create_app(limited)) as second,
    ):
        urls = [first.url, second.url] * 10

        def status(base_url: str) -> int:
            with httpx.Client(base_url=base_url, timeout=30) as client:
                return client.get("/v1/bridge/org", params=params).status_code

        with ThreadPoolExecutor(len(urls)) as pool:
            statuses = list(pool.map(status, urls))
    assert sorted(statuses) == [200] * 5 + [429] * 15


async def test_the_bucket_refills_at_the_rate_up_to_the_burst(runtime: Runtime) -> None:
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

    async def spend(seconds: float) -> bool:
        async with runtime.database.transaction() as session:
            spent = await spend_token(
                session,
                "198.51.100.7",
                rate=1.0,
                burst=2.0,
                now=start + dt.timedelta(seconds=seconds),
            )
        return spent.allowed

    assert [await spend(0), await spend(0), await spend(0)] == [True, True, False]
    assert [await spend(1), await spend(1)] == [True, False]
    assert [await spend(0.5)] == [False]  # a clock stepping back refills nothing
    # Long unused: full again, but never beyond the burst.
    assert [await spend(100), await spend(100), await spend(100)] == [True, True, False]


async def test_sweeping_forgets_only_full_buckets(runtime: Runtime) -> None:
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    async with runtime.database.transaction() as session:
        for key, seconds in (("old", 0.0), ("recent", 9.0)):
            await spend_token(
                session, key, rate=0.5, burst=4.0, now=start + dt.timedelta(seconds=seconds)
            )
    async with runtime.database.transaction() as session:
        # Full after burst / rate = 8 s: "old" (spent at 0 s) is, "recent" (9 s) is not.
        swept = await sweep_full_buckets(
            session, rate=0.5, burst=4.0, now=start + dt.timedelta(seconds=10)
        )
    assert swept == 1
    async with runtime.database.transaction() as session:
        recent = await spend_token(
            session, "recent", rate=0.5, burst=4.0, now=start + dt.timedelta(seconds=10)
        )
    assert recent.tokens == pytest.approx(2.5)  # 3 left at 9 s, +0.5, -1: not a fresh bucket


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_with_the_database_away_each_process_keeps_its_own_budget() -> None:
    away = Database(
        f"postgresql://nobody@127.0.0.1:{_closed_port()}/ehiconnect",
        connect_args={"connect_timeout": 2},
    )
    limiter = SharedRateLimiter(per_minute=1, burst=2)
    try:
        await limiter.check(away, "203.0.113.5")
        await limiter.check(away, "203.0.113.5")
        with pytest.raises(RateLimited):
            await limiter.check(away, "203.0.113.5")
        await limiter.check(away, "203.0.113.6")  # another client, its own bucket
    finally:
        await away.close()
