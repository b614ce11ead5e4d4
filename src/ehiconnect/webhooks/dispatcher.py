"""The worker's dispatcher: sends webhook deliveries as soon as they fall due.

Every `ehiconnect worker` runs one beside its job queue. It claims whatever is due and sends each
claimed batch as a background pass (at most `max_concurrent_passes` at once, so one slow receiver
holds only its own pass), then sleeps until the first of:

- a notification: a new, re-sent or test event, or an endpoint enabled again (see `wakeup`);
- one of its passes finishing (it may have scheduled a retry, or freed room for another pass);
- the earliest `next_attempt_at` of the pending deliveries: a retry, or the end of the lease of a
  claim whose worker died;
- the sweep interval, the safety net: a lost notification costs at most that.

Several dispatchers, on one machine or many, share the work through the claims' SKIP LOCKED
leases, so none sends a delivery another holds; a wake-up that finds nothing costs one claim and
one query. Stopping lets the passes in flight finish and record their results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from sqlalchemy.exc import InterfaceError, OperationalError

from ehiconnect.clock import Clock
from ehiconnect.settings import WebhookSettings
from ehiconnect.webhooks.claims import ClaimedDelivery
from ehiconnect.webhooks.delivery import Deliverer, PassReport
from ehiconnect.webhooks.schedule import backoff_delay, seconds_until_wake
from ehiconnect.webhooks.wakeup import WakeupListener

log = logging.getLogger(__name__)


class Dispatcher:
    """`task = create_task(d.run())` … `d.stop(); await task`, around an opened Deliverer."""

    def __init__(
        self,
        deliverer: Deliverer,
        clock: Clock,
        settings: WebhookSettings,
        listener: WakeupListener,
    ) -> None:
        self._deliverer = deliverer
        self._clock = clock
        self._settings = settings
        self._listener = listener
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._passes: set[asyncio.Task[None]] = set()
        self._running = False
        self.totals = PassReport()  # every pass so far, for logs and tests

    @property
    def running(self) -> bool:
        return self._running

    def wake(self) -> None:
        """Look for due deliveries now (the listener calls it on each notification)."""
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; `run` returns once the passes in flight are recorded."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        self._running = True
        listening = asyncio.create_task(self._listener.run(self.wake), name="webhooks listener")
        listening.add_done_callback(lambda _: self.wake())
        try:
            await self._loop(listening)
        finally:
            self._running = False
            listening.cancel()
            await asyncio.wait([listening])
            if self._passes:
                await asyncio.wait(self._passes)  # each is bounded by the request timeout

    async def _loop(self, listening: asyncio.Task[None]) -> None:
        failures = 0
        while not self._stopping.is_set():
            if listening.done():  # the listener only ends on a defect: surface it
                listening.result()
                raise RuntimeError("the webhooks listener stopped")
            self._wake.clear()
            try:
                delay = await self._dispatch()
                failures = 0
            except Exception as exc:  # a daemon loop: log, back off, go on
                failures += 1
                delay = backoff_delay(failures, self._settings.reconnect_backoff_seconds)
                log.warning(
                    "webhook dispatcher could not claim deliveries; retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_seconds": delay},
                    exc_info=not _is_connection_error(exc),
                )
            await self._sleep(delay)

    async def _dispatch(self) -> float:
        """Claim and start passes while work is due and there is room; how long to sleep."""
        claimed_nothing = True
        while not self._stopping.is_set():
            if len(self._passes) >= self._settings.max_concurrent_passes:
                return self._settings.sweep_interval_seconds  # a pass finishing wakes us
            claimed = await self._deliverer.claim()
            if claimed:
                claimed_nothing = False
                self._start_pass(claimed)
            if len(claimed) < self._settings.batch_size:
                break  # nothing else was due at the claim
        due = await self._deliverer.next_due()
        return seconds_until_wake(
            self._clock.now(),
            due,
            sweep_interval=self._settings.sweep_interval_seconds,
            claimed_nothing=claimed_nothing,
            contended_recheck=self._settings.contended_recheck_seconds,
        )

    def _start_pass(self, claimed: Sequence[ClaimedDelivery]) -> None:
        task = asyncio.create_task(self._deliver(claimed), name="webhooks pass")
        self._passes.add(task)
        task.add_done_callback(self._pass_finished)

    def _pass_finished(self, task: asyncio.Task[None]) -> None:
        self._passes.discard(task)
        self._wake.set()

    async def _deliver(self, claimed: Sequence[ClaimedDelivery]) -> None:
        try:
            report = await self._deliverer.deliver(claimed)
        except Exception:
            # The claims stay leased: they come due again, and are sent again, at lease end.
            log.exception(
                "a webhook pass failed to record its attempts",
                extra={"deliveries": len(claimed)},
            )
            return
        self.totals.claimed += report.claimed
        self.totals.succeeded += report.succeeded
        self.totals.failed += report.failed
        self.totals.disabled_endpoints += report.disabled_endpoints

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()


def _is_connection_error(exc: BaseException) -> bool:
    """The database is away: expected during restarts, not worth a traceback."""
    return isinstance(exc, OperationalError | InterfaceError | OSError)
