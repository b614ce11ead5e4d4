"""The overview: exports per day, success rate, duration per health system, failure reasons."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.console.viewer import Viewer

# A task ended well if it produced its file (it may have expired or been deleted since).
SUCCEEDED_SQL = "(t.failure_reason IS NULL AND t.status IN ('success', 'expired', 'deleted'))"
FAILED_SQL = "(t.failure_reason IS NOT NULL AND t.status IN ('failed', 'deleted'))"
HEALTH_SYSTEM_SQL = "coalesce(b.name, c.catalog_brand_id, c.catalog_endpoint_id, '(unknown)')"


@dataclass
class DayCounts:
    day: dt.date
    succeeded: int = 0
    failed: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.other


@dataclass
class DurationRow:
    health_system: str
    exports: int
    p50_seconds: float
    p95_seconds: float


@dataclass
class Overview:
    days: list[DayCounts]
    durations: list[DurationRow]
    reasons: dict[str, list[int]] = field(default_factory=dict)
    """failure reason → failures per day, aligned with `days`."""

    @property
    def succeeded(self) -> int:
        return sum(d.succeeded for d in self.days)

    @property
    def failed(self) -> int:
        return sum(d.failed for d in self.days)

    @property
    def total(self) -> int:
        return sum(d.total for d in self.days)

    @property
    def success_rate(self) -> float | None:
        ended = self.succeeded + self.failed
        return self.succeeded / ended if ended else None

    @property
    def busiest_day(self) -> int:
        return max((d.total for d in self.days), default=0)

    @property
    def most_failures_in_a_day(self) -> int:
        return max((sum(col) for col in zip(*self.reasons.values(), strict=False)), default=0)


def day_range(now: dt.datetime, days: int) -> list[dt.date]:
    today = now.astimezone(dt.UTC).date()
    return [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def period_start(now: dt.datetime, days: int) -> dt.datetime:
    first = day_range(now, days)[0]
    return dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC)


async def load_overview(
    db: AsyncSession, viewer: Viewer, now: dt.datetime, days: int = 14
) -> Overview:
    calendar = day_range(now, days)
    params = viewer.params(since=period_start(now, days))
    org = viewer.org_clause("t.org_id", params)
    by_day = {day: DayCounts(day) for day in calendar}
    reasons: dict[str, list[int]] = {}
    rows = await db.execute(
        text(
            f"""
            SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day,
                   {SUCCEEDED_SQL} AS ok, {FAILED_SQL} AS bad, t.failure_reason, count(*) AS n
            FROM export_tasks t
            WHERE t.api_mode = :mode AND t.created_at >= :since{org}
            GROUP BY 1, 2, 3, 4
            """  # noqa: S608 (fragments are constants; values are bound)
        ),
        params,
    )
    for day, ok, bad, reason, n in rows:
        counts = by_day.get(day)
        if counts is None:
            continue
        if ok:
            counts.succeeded += n
        elif bad:
            counts.failed += n
            series = reasons.setdefault(reason, [0] * len(calendar))
            series[calendar.index(day)] += n
        else:
            counts.other += n
    durations = await db.execute(
        text(
            f"""
            SELECT {HEALTH_SYSTEM_SQL} AS hs, count(*) AS n,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
                     t.completed_at - coalesce(t.started_at, t.created_at))) AS p50,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM
                     t.completed_at - coalesce(t.started_at, t.created_at))) AS p95
            FROM export_tasks t
            JOIN org_connections c ON c.org_connection_id = t.org_connection_id
            LEFT JOIN catalog_brands b ON b.id = c.catalog_brand_id
            WHERE t.api_mode = :mode AND t.created_at >= :since{org}
              AND {SUCCEEDED_SQL} AND t.completed_at IS NOT NULL
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50
            """  # noqa: S608
        ),
        params,
    )
    return Overview(
        days=[by_day[day] for day in calendar],
        durations=[DurationRow(hs, n, float(p50), float(p95)) for hs, n, p50, p95 in durations],
        reasons=dict(sorted(reasons.items(), key=lambda item: -sum(item[1]))),
    )
