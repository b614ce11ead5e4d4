"""Waking dispatchers when deliveries become due now: PostgreSQL NOTIFY in the writer's
transaction, LISTEN in every worker.

`notify_deliverers(session)` is called by whatever makes a delivery due at once (an emitted,
re-sent or test event, an endpoint enabled again). NOTIFY is transactional: it is delivered when
the transaction commits, never if it rolls back, and PostgreSQL folds identical notifications of
one transaction into one, so a transaction emitting a hundred events wakes each worker once.

`WakeupListener` holds the LISTEN side: a dedicated psycopg connection (LISTEN cannot share a
pooled one), probed while idle so that a silently dead connection is noticed, and re-opened with
backoff when lost. Notifications sent while it was not listening are lost, so every (re)connect
also counts as a wake-up: the dispatcher then looks for due work itself. It is written on psycopg's
`notifies()` rather than procrastinate's `listen_notify`, which also reconnects but gives up (and
stops its worker) when the database cannot be reached, and does not say when it has reconnected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.settings import WebhookSettings
from ehiconnect.webhooks.schedule import backoff_delay

log = logging.getLogger(__name__)

CHANNEL = "ehiconnect_webhooks"
APPLICATION_NAME = "ehiconnect webhooks listener"  # how operators (and tests) spot it

_NOTIFY = text(f"NOTIFY {CHANNEL}")


async def notify_deliverers(session: AsyncSession) -> None:
    """Wake every worker's dispatcher when the session's transaction commits."""
    await session.execute(_NOTIFY)


class WakeupListener:
    """LISTENs on the webhook channel and calls `on_wake` for each notification and (re)connect."""

    def __init__(self, url: str, settings: WebhookSettings) -> None:
        self._url = url
        self._settings = settings
        self.connections = 0  # successful LISTENs so far; more than 1 means it reconnected

    async def run(self, on_wake: Callable[[], None]) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        failures = 0
        while True:
            connected_before = self.connections
            try:
                await self._listen(on_wake)
            except (psycopg.Error, OSError) as exc:
                # A connection that did get to LISTEN starts a new run of failures.
                failures = 1 if self.connections > connected_before else failures + 1
                wait = backoff_delay(failures, self._settings.reconnect_backoff_seconds)
                log.warning(
                    "webhook listener lost the database; reconnecting",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_seconds": wait},
                )
                await asyncio.sleep(wait)

    async def _listen(self, on_wake: Callable[[], None]) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, application_name=APPLICATION_NAME
        ) as connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self.connections += 1
            on_wake()  # catch up on whatever became due while nobody listened
            while True:
                async for _ in connection.notifies(timeout=self._settings.listen_probe_seconds):
                    on_wake()
                await connection.execute("SELECT 1")  # idle: is the connection still alive?
