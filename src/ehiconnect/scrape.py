"""Serving Prometheus metrics, and gauges read from the database when they are scraped.

Each product keeps its own `CollectorRegistry` (`ehiconnect.metrics`, `ehiconnect.tracker.metrics`)
whose counters are defined once per process; a process exposes it on `/metrics` of its API, or on
its own port (`serve_metrics`) for a worker or the tracker.

Some figures (queue depth, the oldest waiting job) live in PostgreSQL, not in process memory: a
`ScrapeTimeGauges` collector asks the database for them when Prometheus scrapes, at most once per
`max_age_seconds` whatever the number of scrapers, and on the event loop that owns the database's
pool (a standalone metrics server answers from its own thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.database import Database

log = logging.getLogger(__name__)

SCRAPE_QUERY_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class GaugeSpec:
    """One gauge family a scrape-time query fills: name, help, label names."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()


Sample = tuple[str, tuple[str, ...], float]
"""(gauge name, label values, value)."""

Query = Callable[[AsyncSession], Awaitable[list[Sample]]]


@dataclass
class _Snapshot:
    database: Database
    taken_at: float
    samples: list[Sample]


class ScrapeTimeGauges(Collector):
    """Gauges whose values come from `query` at scrape time, cached for `max_age_seconds`.

    `await refresh(database)` from async code (the API's /metrics route) before rendering;
    a standalone server's thread reaches the database through `attach(database, loop)`.
    """

    def __init__(self, specs: tuple[GaugeSpec, ...], query: Query, max_age_seconds: float) -> None:
        self._specs = specs
        self._query = query
        self.max_age_seconds = max_age_seconds
        self._snapshot: _Snapshot | None = None
        self._attached: tuple[Database, asyncio.AbstractEventLoop] | None = None
        self._guard = threading.Lock()
        self._pending: tuple[Database, asyncio.Task[None]] | None = None

    def attach(self, database: Database, loop: asyncio.AbstractEventLoop) -> None:
        self._attached = (database, loop)

    def detach(self, database: Database) -> None:
        if self._attached is not None and self._attached[0] is database:
            self._attached = None

    def _fresh(self, database: Database) -> bool:
        snapshot = self._snapshot
        return (
            snapshot is not None
            and snapshot.database is database
            and time.monotonic() - snapshot.taken_at < self.max_age_seconds
        )

    async def refresh(self, database: Database) -> None:
        """Query the database unless a recent enough answer from it is cached; callers that
        arrive while a query runs wait for that one instead of sending their own."""
        if self._fresh(database):
            return
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is None or pending[0] is not database or pending[1].get_loop() is not loop:
            pending = (database, loop.create_task(self._read(database)))
            self._pending = pending
        try:
            await asyncio.shield(pending[1])
        finally:
            if self._pending is pending and pending[1].done():
                self._pending = None

    async def _read(self, database: Database) -> None:
        try:
            async with database.transaction() as session:
                samples = await asyncio.wait_for(
                    self._query(session), timeout=SCRAPE_QUERY_TIMEOUT_SECONDS
                )
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("metrics: could not read gauges", extra={"error": type(exc).__name__})
            return
        self._snapshot = _Snapshot(database, time.monotonic(), samples)

    def _refresh_from_thread(self) -> None:
        attached = self._attached
        if attached is None:
            return
        database, loop = attached
        try:
            if asyncio.get_running_loop() is loop:
                return  # on the loop itself: the async caller refreshed before rendering
        except RuntimeError:
            pass
        if loop.is_closed() or self._fresh(database):
            return
        with self._guard:  # concurrent scrapes share one query
            if self._fresh(database):
                return
            future = asyncio.run_coroutine_threadsafe(self.refresh(database), loop)
            try:
                future.result(timeout=SCRAPE_QUERY_TIMEOUT_SECONDS + 1)
            except Exception:
                future.cancel()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self._refresh_from_thread()
        snapshot = self._snapshot
        families = {
            spec.name: GaugeMetricFamily(spec.name, spec.documentation, labels=list(spec.labels))
            for spec in self._specs
        }
        for name, labels, value in snapshot.samples if snapshot else ():
            families[name].add_metric(list(labels), value)
        yield from families.values()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for spec in self._specs:
            yield GaugeMetricFamily(spec.name, spec.documentation, labels=list(spec.labels))


@dataclass
class MetricsServer:
    """A standalone `/metrics` endpoint (worker, tracker): stop it with `close()`."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve `registry` on http://host:port/metrics from a background thread."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics endpoint listening", extra={"host": host, "port": server.server_address[1]})
    return MetricsServer(server, thread)


@contextlib.asynccontextmanager
async def exposed_metrics(
    registry: CollectorRegistry,
    gauges: ScrapeTimeGauges,
    database: Database,
    *,
    host: str,
    port: int | None,
) -> AsyncIterator[MetricsServer | None]:
    """While the block runs, serve `registry` on host:port (nothing when `port` is None), its
    scrape-time gauges read through `database` on the running loop."""
    if port is None:
        yield None
        return
    gauges.attach(database, asyncio.get_running_loop())
    server = serve_metrics(registry, host, port)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)
        gauges.detach(database)
