"""The platform's Prometheus metrics, defined once per process on the platform's own registry.

Every `serve` process shows them on `/metrics`, every `worker` on `--metrics-port`; each process
counts what it did itself, and Prometheus adds the processes of a fleet up. Labels name kinds of
things (platform type, mode, outcome, failure reason, health-system host, queue), never a
patient, a connection or a task: ids go to the lifecycle logs (`ehiconnect.lifecycle`) instead.
docs/operations.md lists every metric with its meaning and example queries.

Call sites use the small functions below, one line each. `set_enabled(False)` turns them into
no-ops (the overhead benchmark's "off" runs); the scrape-time gauges are unaffected.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.database import Database
from ehiconnect.scrape import (
    GaugeSpec,
    MetricsServer,
    Sample,
    ScrapeTimeGauges,
    exposed_metrics,
)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Record (True, the default) or drop every event of this process (benchmarks)."""
    global _enabled
    _enabled = enabled


def status_class(status: int | None) -> str:
    """`2xx`…`5xx`, or `error` when no response came."""
    return f"{status // 100}xx" if status is not None and 100 <= status < 600 else "error"


_DURATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))
_SIZE_BUCKETS = (*(float(10**e) for e in range(3, 11)), float("inf"))  # 1 kB … 10 GB
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, float("inf"))

# Exports
EXPORTS_REQUESTED = Counter(
    "ehiconnect_exports_requested",
    "Export requests that created a new task (a repeated request answered with an existing "
    "task is not counted)",
    ["platform_type", "mode"],
    registry=REGISTRY,
)
EXPORTS_STARTED = Counter(
    "ehiconnect_exports_started",
    "Exports whose first run began on a worker (a resumed run is not counted again)",
    ["platform_type", "mode"],
    registry=REGISTRY,
)
EXPORTS_FINISHED = Counter(
    "ehiconnect_exports_finished",
    "Exports that ended, by outcome (success, failed, cancelled) and failure reason",
    ["platform_type", "mode", "outcome", "failure_reason"],
    registry=REGISTRY,
)
EXPORT_DURATION = Histogram(
    "ehiconnect_export_duration_seconds",
    "Time from an export's first run to its end",
    ["platform_type", "mode", "outcome"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
EXPORT_SIZE = Histogram(
    "ehiconnect_export_size_bytes",
    "Size of each successful export's file",
    ["platform_type", "mode"],
    buckets=_SIZE_BUCKETS,
    registry=REGISTRY,
)
EXPORT_RESOURCES = Histogram(
    "ehiconnect_export_resources",
    "Resources in each successful export's file",
    ["platform_type", "mode"],
    buckets=(10, 100, 1_000, 10_000, 100_000, 1_000_000, float("inf")),
    registry=REGISTRY,
)
EXPORTS_REQUEUED = Counter(
    "ehiconnect_exports_requeued",
    "Pending exports whose job had ended, given a new job by the reconciler",
    registry=REGISTRY,
)
EXPORTS_PURGED = Counter(
    "ehiconnect_exports_purged",
    "Export files deleted at the end of their retention",
    registry=REGISTRY,
)

# Crawling health systems
CRAWL_REQUESTS = Counter(
    "ehiconnect_crawl_requests",
    "FHIR requests sent to health systems, by the endpoint's host and status class "
    "(error: no response)",
    ["host", "status_class"],
    registry=REGISTRY,
)
CRAWL_RETRIES = Counter(
    "ehiconnect_crawl_retries",
    "FHIR requests retried after a transient failure",
    ["host"],
    registry=REGISTRY,
)
CRAWL_THROTTLED = Counter(
    "ehiconnect_crawl_throttled",
    "Answers that throttle the crawl (429, 503), by status",
    ["host", "status"],
    registry=REGISTRY,
)
CRAWL_RETRY_AFTER = Histogram(
    "ehiconnect_crawl_retry_after_seconds",
    "Retry-After values health systems sent with a throttling answer",
    ["host"],
    buckets=(0, 1, 2, 5, 10, 30, 60, 120, 300, float("inf")),
    registry=REGISTRY,
)
CRAWL_CONCURRENCY = Gauge(
    "ehiconnect_crawl_concurrency_limit",
    "Requests an export may have in flight to this host now (adaptive: halved when "
    "throttled, grown back after successes); the latest value set by any export of the process",
    ["host"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "ehiconnect_token_refreshes",
    "Access-token refreshes at health systems, by outcome (refreshed; refused: the patient "
    "must reconnect; failed: the health system could not be reached or answered an error)",
    ["outcome"],
    registry=REGISTRY,
)

# Webhooks
WEBHOOK_ATTEMPTS = Counter(
    "ehiconnect_webhook_attempts",
    "Webhook delivery attempts, by outcome and the receiver's status class",
    ["outcome", "status_class"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERY_LATENCY = Histogram(
    "ehiconnect_webhook_delivery_latency_seconds",
    "Time from the event's commit to the receiver's 2xx",
    ["event_type"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "ehiconnect_webhook_endpoints_disabled",
    "Webhook endpoints disabled by the platform (gone: the receiver answered 410; failing: "
    "every delivery failed for webhooks.disable_after_days)",
    ["reason"],
    registry=REGISTRY,
)

# Consent
CONSENT_STARTED = Counter(
    "ehiconnect_consent_flows_started",
    "Consent flows started (the patient was sent to the health system's sign-in)",
    ["mode"],
    registry=REGISTRY,
)
CONSENT_COMPLETED = Counter(
    "ehiconnect_consent_flows_completed",
    "Consent flows that ended with an authorized connection",
    ["platform_type", "mode"],
    registry=REGISTRY,
)
CONSENT_FAILED = Counter(
    "ehiconnect_consent_flows_failed",
    "Consent flows that ended without a connection, by reason",
    ["reason"],
    registry=REGISTRY,
)

# Jobs
STALLED_JOBS_RECOVERED = Counter(
    "ehiconnect_jobs_stalled_recovered",
    "Jobs whose worker stopped sending heartbeats, put back in the queue",
    registry=REGISTRY,
)

CONSENT_FAILURE_REASONS = frozenset(
    {
        "access_denied",
        "flow_expired",
        "invalid_request",
        "invalid_state",
        "scope_patient_missing",
        "state_reused",
        "token_exchange_failed",
    }
)


def export_requested(platform_type: str, mode: str) -> None:
    if _enabled:
        EXPORTS_REQUESTED.labels(platform_type, mode).inc()


def export_started(platform_type: str, mode: str) -> None:
    if _enabled:
        EXPORTS_STARTED.labels(platform_type, mode).inc()


def export_finished(
    platform_type: str,
    mode: str,
    outcome: str,
    *,
    failure_reason: str = "",
    duration_seconds: float | None = None,
    size_bytes: int | None = None,
    resources: int | None = None,
) -> None:
    if not _enabled:
        return
    EXPORTS_FINISHED.labels(platform_type, mode, outcome, failure_reason).inc()
    if duration_seconds is not None:
        EXPORT_DURATION.labels(platform_type, mode, outcome).observe(max(duration_seconds, 0.0))
    if size_bytes is not None:
        EXPORT_SIZE.labels(platform_type, mode).observe(size_bytes)
    if resources is not None:
        EXPORT_RESOURCES.labels(platform_type, mode).observe(resources)


def exports_requeued(count: int = 1) -> None:
    if _enabled and count:
        EXPORTS_REQUEUED.inc(count)


def exports_purged(count: int) -> None:
    if _enabled and count:
        EXPORTS_PURGED.inc(count)


def crawl_response(host: str, status: int | None, retry_after: float | None, limit: int) -> None:
    """One FHIR request's answer (status None: no response) and the limit it left."""
    if not _enabled:
        return
    CRAWL_REQUESTS.labels(host, status_class(status)).inc()
    if status in (429, 503):
        CRAWL_THROTTLED.labels(host, str(status)).inc()
        if retry_after is not None:
            CRAWL_RETRY_AFTER.labels(host).observe(retry_after)
    CRAWL_CONCURRENCY.labels(host).set(limit)


def crawl_retry(host: str) -> None:
    if _enabled:
        CRAWL_RETRIES.labels(host).inc()


def token_refresh(outcome: str) -> None:
    if _enabled:
        TOKEN_REFRESHES.labels(outcome).inc()


def webhook_attempt(
    outcome: str, status: int | None, *, delivered_after_seconds: float | None, event_type: str
) -> None:
    """One delivery attempt; `delivered_after_seconds` (commit → 2xx) when it succeeded."""
    if not _enabled:
        return
    WEBHOOK_ATTEMPTS.labels(outcome, status_class(status)).inc()
    if delivered_after_seconds is not None:
        WEBHOOK_DELIVERY_LATENCY.labels(event_type).observe(max(delivered_after_seconds, 0.0))


def webhook_endpoint_disabled(reason: str) -> None:
    if _enabled:
        WEBHOOK_ENDPOINTS_DISABLED.labels(reason).inc()


def consent_started(mode: str) -> None:
    if _enabled:
        CONSENT_STARTED.labels(mode).inc()


def consent_completed(platform_type: str, mode: str) -> None:
    if _enabled:
        CONSENT_COMPLETED.labels(platform_type, mode).inc()


def consent_failure_reason(error: str) -> str:
    """The label for a failed flow: our codes as they are; anything a health system sent as its
    OAuth `error` (free text) as `authorization_error`, so the label set stays small."""
    return error if error in CONSENT_FAILURE_REASONS else "authorization_error"


def consent_failed(reason: str) -> None:
    if _enabled:
        CONSENT_FAILED.labels(consent_failure_reason(reason)).inc()


def stalled_jobs_recovered(count: int) -> None:
    if _enabled and count:
        STALLED_JOBS_RECOVERED.inc(count)


# Read from PostgreSQL at scrape time (cached a few seconds: a scrape storm costs one query).
_QUEUE_JOBS = text(
    """
    SELECT queue_name, task_name,
      CASE WHEN status = 'doing' THEN 'running'
           WHEN scheduled_at > now() THEN 'scheduled' ELSE 'waiting' END AS state,
      count(*)
    FROM procrastinate_jobs WHERE status IN ('todo', 'doing')
    GROUP BY 1, 2, 3
    """
)
_OLDEST_WAITING = text(
    """
    WITH oldest AS (
      SELECT DISTINCT ON (queue_name) queue_name, id, scheduled_at FROM procrastinate_jobs
      WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())
      ORDER BY queue_name, id
    )
    SELECT o.queue_name, extract(epoch FROM now() - greatest(o.scheduled_at,
      (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = o.id)))
    FROM oldest o
    """
)
_WEBHOOK_BACKLOG = text(
    """
    SELECT count(*), extract(epoch FROM now() - min(created_at))
    FROM webhook_deliveries WHERE status = 'pending'
    """
)

_QUEUE_JOBS_NAME = "ehiconnect_queue_jobs"
_OLDEST_NAME = "ehiconnect_queue_oldest_waiting_age_seconds"
_BACKLOG_NAME = "ehiconnect_webhook_deliveries_pending"
_BACKLOG_AGE_NAME = "ehiconnect_webhook_oldest_pending_age_seconds"


async def _database_gauges(session: AsyncSession) -> list[Sample]:
    samples: list[Sample] = []
    for queue, task, state, count in (await session.execute(_QUEUE_JOBS)).all():
        samples.append((_QUEUE_JOBS_NAME, (queue, task, state), float(count)))
    for queue, age in (await session.execute(_OLDEST_WAITING)).all():
        if age is not None:
            samples.append((_OLDEST_NAME, (queue,), max(float(age), 0.0)))
    pending, age = (await session.execute(_WEBHOOK_BACKLOG)).one()
    samples.append((_BACKLOG_NAME, (), float(pending)))
    samples.append((_BACKLOG_AGE_NAME, (), max(float(age), 0.0) if age is not None else 0.0))
    return samples


DATABASE_GAUGES = ScrapeTimeGauges(
    (
        GaugeSpec(
            _QUEUE_JOBS_NAME,
            "Jobs in the queue by task and state (waiting: due now; scheduled: due later, "
            "e.g. a retry; running)",
            ("queue", "task", "state"),
        ),
        GaugeSpec(
            _OLDEST_NAME,
            "How long the oldest job due now has been waiting for a worker",
            ("queue",),
        ),
        GaugeSpec(_BACKLOG_NAME, "Webhook deliveries not yet delivered or given up"),
        GaugeSpec(
            _BACKLOG_AGE_NAME,
            "Age of the oldest webhook delivery still pending (0 when none is)",
        ),
    ),
    _database_gauges,
    max_age_seconds=5.0,
)
REGISTRY.register(DATABASE_GAUGES)


@contextlib.asynccontextmanager
async def exposed(
    database: Database, *, host: str, port: int | None
) -> AsyncIterator[MetricsServer | None]:
    """A worker's own /metrics on host:port while the block runs (nothing when port is None)."""
    async with exposed_metrics(REGISTRY, DATABASE_GAUGES, database, host=host, port=port) as server:
        yield server
