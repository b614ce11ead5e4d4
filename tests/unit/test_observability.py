"""Metrics and lifecycle lines as pure parts: labels stay a small set, the scrape-time gauges cost
one query per interval whatever the number of scrapers, lifecycle lines are JSON with their keys."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ehiconnect import metrics
from ehiconnect.db.database import Database
from ehiconnect.lifecycle import LifecycleEvent, log_event
from ehiconnect.logging import JsonFormatter, RedactingFilter
from ehiconnect.scrape import GaugeSpec, Sample, ScrapeTimeGauges
from ehiconnect.tracker import metrics as tracker_metrics


@pytest.mark.parametrize(
    ("status", "label"),
    [(200, "2xx"), (204, "2xx"), (301, "3xx"), (429, "4xx"), (503, "5xx"), (None, "error")],
)
def test_status_classes(status: int | None, label: str) -> None:
    assert metrics.status_class(status) == label


def test_a_health_systems_free_text_error_is_not_a_label() -> None:
    assert metrics.consent_failure_reason("access_denied") == "access_denied"
    assert metrics.consent_failure_reason("state_reused") == "state_reused"
    assert metrics.consent_failure_reason("x" * 500) == "authorization_error"
    assert metrics.consent_failure_reason("server_error: patient Jane") == "authorization_error"


def test_tracker_step_failure_reasons_are_codes_or_other() -> None:
    class Job:
        job_id = "j1"
        org_connection_id = "c1"
        task_id = None

    def count(reason: str) -> float:
        value = tracker_metrics.REGISTRY.get_sample_value(
            "ehiconnect_tracker_step_failures_total", {"step": "download", "reason": reason}
        )
        return value or 0.0

    before_code, before_other = count("sha256_mismatch"), count("other")
    tracker_metrics.step_failed(cast(Any, Job()), "download", "sha256_mismatch")
    tracker_metrics.step_failed(cast(Any, Job()), "download", "Receiver said: Jane Doe 1970")
    assert count("sha256_mismatch") == before_code + 1
    assert count("other") == before_other + 1


class FakeDatabase:
    """Just enough of Database for the gauges: a transaction that yields a session."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[object]:
        yield object()


def gauges(calls: list[int], max_age: float = 60.0) -> ScrapeTimeGauges:
    async def query(session: Any) -> list[Sample]:
        calls.append(1)
        await asyncio.sleep(0.05)  # a query in flight while other scrapes arrive
        return [("t_jobs", ("default",), float(len(calls)))]

    return ScrapeTimeGauges((GaugeSpec("t_jobs", "jobs", ("queue",)),), query, max_age)


async def test_scrape_time_gauges_query_once_for_many_scrapers() -> None:
    calls: list[int] = []
    collector = gauges(calls)
    database = cast(Database, FakeDatabase())
    await asyncio.gather(*(collector.refresh(database) for _ in range(20)))
    await collector.refresh(database)  # still fresh: no query
    assert len(calls) == 1
    registry = CollectorRegistry()
    registry.register(collector)
    assert b't_jobs{queue="default"} 1.0' in generate_latest(registry)


async def test_scrape_time_gauges_read_again_when_stale_or_for_another_database() -> None:
    first, second = cast(Database, FakeDatabase()), cast(Database, FakeDatabase())
    stale_calls: list[int] = []
    stale = gauges(stale_calls, max_age=0.0)
    await stale.refresh(first)
    await stale.refresh(first)  # max_age 0: always stale
    assert len(stale_calls) == 2
    fresh_calls: list[int] = []
    fresh = gauges(fresh_calls, max_age=60.0)
    await fresh.refresh(first)
    await fresh.refresh(second)  # another database's figures are never served from the cache
    assert len(fresh_calls) == 2


async def test_a_standalone_server_thread_reads_through_the_loop() -> None:
    calls: list[int] = []
    collector = gauges(calls)
    database = cast(Database, FakeDatabase())
    collector.attach(database, asyncio.get_running_loop())
    registry = CollectorRegistry()
    registry.register(collector)
    text = await asyncio.to_thread(generate_latest, registry)  # as the metrics thread does
    assert b't_jobs{queue="default"} 1.0' in text
    assert len(calls) == 1
    collector.detach(database)


def test_a_lifecycle_line_is_json_with_its_keys_and_still_redacted() -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ehiconnect.lifecycle")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        log_event(
            LifecycleEvent.EXPORT_FAILED,
            task_id="a" * 32,
            org_id="org_1",
            failure_reason="timeout",
            duration_ms=1200,
            resources=None,
            token="tok-should-not-show",
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    line = orjson.loads(buffer.getvalue())
    assert line["event"] == "export.failed"
    assert line["message"] == "export.failed"
    assert line["level"] == "info"
    assert line["task_id"] == "a" * 32
    assert line["failure_reason"] == "timeout"
    assert line["duration_ms"] == 1200
    assert "resources" not in line  # None is left out
    assert "tok-should-not-show" not in buffer.getvalue()


def test_disabled_metrics_record_nothing() -> None:
    def count() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "ehiconnect_token_refreshes_total", {"outcome": "refreshed"}
        )
        return value or 0.0

    before = count()
    metrics.set_enabled(False)
    try:
        metrics.token_refresh("refreshed")
    finally:
        metrics.set_enabled(True)
    assert count() == before
    metrics.token_refresh("refreshed")
    assert count() == before + 1
