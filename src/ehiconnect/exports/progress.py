"""An export's progress on its task row: the phase it is in and counters as they grow.

Counters add up in memory and go to the database at most every `PROGRESS_INTERVAL` seconds (and
at each phase change, and when flushed): a crawl makes many requests at once, and one UPDATE of
the task's row per page, read or download would queue them all on that row's lock. A counters'
write runs behind its caller (the crawl goes on while it commits: under load, a commit waiting
for the disk took over a second), and commits without waiting for the WAL flush (counters; the
task's end is an ordinary commit). Each write also tells whether the task is still pending: once
a customer cancelled it, the call after that write raises `Cancelled` and the run stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, Protocol

import orjson

from ehiconnect import tracing
from ehiconnect.db.database import Database, pipelined_without_flush_wait
from ehiconnect.exports import telemetry
from ehiconnect.exports.models import ExportTask
from ehiconnect.vocabulary import ExportStatus

PROGRESS_INTERVAL = 0.25  # seconds between writes of an export's progress counters


class Cancelled(Exception):
    """The task is no longer pending (the customer cancelled it): stop the run."""


class RequestCounts(Protocol):
    """How many requests (and retries of them) the run's session has made so far."""

    @property
    def requests(self) -> int: ...

    @property
    def retries(self) -> int: ...


class ProgressRecorder:
    """The run's `crawler.ports.CrawlProgress`, and packaging's progress callback."""

    def __init__(
        self,
        database: Database,
        task: ExportTask,
        counts: RequestCounts,
        phases: tracing.PhaseSpans,
    ) -> None:
        self._database = database
        self._task = task
        self._counts = counts
        self._phases = phases
        self._resources = 0
        self._bytes = 0
        self._last_write = float("-inf")
        self._writing = asyncio.Lock()
        self._behind: asyncio.Task[None] | None = None  # a counters' write in flight
        self._stopped: BaseException | None = None  # what that write met (e.g. Cancelled)

    def __call__(
        self,
        *,
        phase: str | None = None,
        resources_added: int = 0,
        attachment_bytes: int = 0,
        crawl_report: dict[str, Any] | None = None,
    ) -> Coroutine[Any, Any, None]:
        """The phase's span is entered here, at the call, in the caller's task (the crawl's):
        the crawl spawns its phase writes as tasks of their own, and a span made current there
        would neither be the parent of the phase's requests nor close in the context it was
        opened in. The rest, counters and the write, is the awaited part."""
        if phase is not None:
            self._phases.enter(phase)  # the phase's requests become its span's children
        return self._record(
            phase=phase,
            resources_added=resources_added,
            attachment_bytes=attachment_bytes,
            crawl_report=crawl_report,
        )

    async def _record(
        self,
        *,
        phase: str | None,
        resources_added: int,
        attachment_bytes: int,
        crawl_report: dict[str, Any] | None,
    ) -> None:
        self._resources += resources_added
        self._bytes += attachment_bytes
        self._raise_if_stopped()
        if phase is None and crawl_report is None:
            due = time.monotonic() - self._last_write >= PROGRESS_INTERVAL
            if due and self._behind is None:
                self._last_write = time.monotonic()
                self._behind = asyncio.ensure_future(self._write_behind())
            return
        await self._write(phase, crawl_report or {})

    async def flush(self) -> None:
        """Write what has added up since the last write (e.g. packaging's last bytes)."""
        if self._behind is not None:
            await asyncio.shield(self._behind)
        self._raise_if_stopped()
        await self._write(None, {})

    async def _write_behind(self) -> None:
        try:
            await self._write(None, {})
        except Exception as exc:  # met by the next call
            self._stopped = exc
        finally:
            self._behind = None

    def _raise_if_stopped(self) -> None:
        if self._stopped is not None:
            raise self._stopped

    async def _write(self, phase: str | None, extra: dict[str, Any]) -> None:
        async with self._writing:
            resources, sent_bytes = self._resources, self._bytes
            self._resources = self._bytes = 0
            self._last_write = time.monotonic()
            try:
                still_pending = await record_progress(
                    self._database,
                    self._task.task_id,
                    phase=phase,
                    resources=resources,
                    attachment_bytes=sent_bytes,
                    requests=self._counts.requests,
                    retries=self._counts.retries,
                    extra=extra,
                )
            except BaseException:
                self._resources += resources  # counted again at the next write
                self._bytes += sent_bytes
                raise
        if not still_pending:
            raise Cancelled
        if phase is not None:
            telemetry.phase_changed(self._task, phase)


_ADD_PROGRESS = """
    UPDATE export_tasks SET
      phase = coalesce(%(phase)s::text, phase),
      progress = progress || jsonb_build_object(
        'resources', coalesce((progress->>'resources')::bigint, 0) + %(resources)s::bigint,
        'attachment_bytes',
          coalesce((progress->>'attachment_bytes')::bigint, 0) + %(bytes)s::bigint,
        'requests', %(requests)s::bigint,
        'retries', %(retries)s::bigint)
      || %(extra)s::jsonb
    WHERE task_id = %(task_id)s AND status = %(pending)s
    RETURNING true
"""
"""Sent straight to the driver, pipelined with the transaction's BEGIN and `NO_FLUSH_WAIT`: one
round trip for the three (the crawl records its progress every few hundred milliseconds)."""


async def record_progress(
    database: Database,
    task_id: str,
    *,
    phase: str | None,
    resources: int,
    attachment_bytes: int,
    requests: int,
    retries: int,
    extra: dict[str, Any],
) -> bool:
    """Add to the task's progress counters in one atomic UPDATE; False once it is not pending."""
    async with (
        database.transaction() as session,
        pipelined_without_flush_wait(session) as driver,
    ):
        updated = await driver.execute(
            _ADD_PROGRESS,
            {
                "phase": phase,
                "resources": resources,
                "bytes": attachment_bytes,
                "requests": requests,
                "retries": retries,
                "extra": orjson.dumps(extra).decode(),
                "task_id": task_id,
                "pending": ExportStatus.PENDING.value,
            },
        )
        still_pending = await updated.fetchone()
    return bool(still_pending)
