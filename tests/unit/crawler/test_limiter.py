"""The crawl's request limiter: a free slot goes first to the requests others wait for."""

from __future__ import annotations

import asyncio

from ehiconnect.crawler.fetch import AdaptiveLimiter, Priority
from ehiconnect.crawler.policy import ConcurrencyBounds


async def test_a_free_slot_goes_to_a_waiting_page_before_waiting_attachments() -> None:
    limiter = AdaptiveLimiter(ConcurrencyBounds(minimum=1, maximum=1, initial=1))
    started: list[str] = []
    release = asyncio.Event()

    async def request(name: str, priority: Priority) -> None:
        async with limiter.slot(priority):
            started.append(name)
            await release.wait()

    first = asyncio.create_task(request("attachment 1", Priority.BULK))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(request("attachment 2", Priority.BULK)),
        asyncio.create_task(request("attachment 3", Priority.BULK)),
    ]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(request("next page", Priority.CHAIN)))
    await asyncio.sleep(0)
    assert started == ["attachment 1"]  # one slot
    release.set()
    await asyncio.gather(first, *waiting)
    assert started == ["attachment 1", "next page", "attachment 2", "attachment 3"]


async def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    limiter = AdaptiveLimiter(ConcurrencyBounds(minimum=1, maximum=1, initial=1))
    holder = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            entered.set()
            await holder.wait()

    async def wait_forever() -> None:
        async with limiter.slot():
            raise AssertionError("a cancelled waiter must never run")

    owner = asyncio.create_task(hold())
    await entered.wait()
    doomed = asyncio.create_task(wait_forever())
    await asyncio.sleep(0)
    doomed.cancel()
    holder.set()
    await owner
    async with asyncio.timeout(1):
        async with limiter.slot(Priority.BULK):
            pass  # the slot came back
