"""The failure review: failures of both stages, grouped, counted over a period, with a trend.

- consent: sign-ins that failed (`consent.failed` in the audit log: the patient declined, the
  portal answered an error, the token exchange was refused, the grant lacked patient access),
  sign-ins abandoned (a flow never came back before it expired), and connections the health
  system ended (refresh refused: `invalid_grant`, from the consent log);
- export: failed tasks by reason, health system and the phase they failed in;
- webhook: failed delivery attempts by endpoint and status code (no status: no answer).

Each group carries its count per day (the trend) and a link to its cases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.console.queries.overview import FAILED_SQL, day_range, period_start
from ehiconnect.console.viewer import Viewer

MAX_GROUPS = 50
"""Groups per stage on the page, largest first: enough to decide what to tune, and the page stays
fast however many health systems fail (each group carries a per-day sparkline)."""
ENDPOINT_NAME_SQL = "coalesce(e.name, {column}, '(unknown)')"
MODE_OF_ENDPOINT_SQL = "(CASE WHEN e.sandbox THEN 'test' ELSE 'live' END)"

CONSENT_LABELS = {
    "access_denied": "Patient declined at the portal (access_denied)",
    "token_exchange_failed": "Token exchange refused (e.g. invalid_grant)",
    "scope_patient_missing": "Grant without patient access",
    "invalid_request": "Callback without a code",
    "abandoned": "Sign-in abandoned (flow expired unused)",
    "refresh_refused": "Health system ended the connection (refresh refused: invalid_grant)",
}


def consent_label(error: str) -> str:
    return CONSENT_LABELS.get(error, f"Portal error: {error}")


@dataclass
class FailureGroup:
    label: str
    where: str
    """The health system, or the webhook endpoint's URL."""
    detail: str
    """The phase, or the status code."""
    trend: list[int]
    link: str
    extra: int | None = None
    """Webhooks: deliveries given up on, for the endpoint."""

    @property
    def count(self) -> int:
        return sum(self.trend)


@dataclass
class FailureReview:
    days: list[dt.date]
    consent: list[FailureGroup] = field(default_factory=list)
    export: list[FailureGroup] = field(default_factory=list)
    webhook: list[FailureGroup] = field(default_factory=list)

    hidden: dict[str, int] = field(default_factory=dict)
    """Per stage, how many smaller groups are left off the page (beyond `MAX_GROUPS`)."""

    @cached_property
    def peak(self) -> int:
        """The largest day count of any group shown: every sparkline shares this scale. Cached:
        the page reads it once per group."""
        return max(
            (v for g in (*self.consent, *self.export, *self.webhook) for v in g.trend), default=0
        )

    def keep_largest(self, limit: int) -> None:
        """Show the `limit` largest groups of each stage; count the rest in `hidden`."""
        for stage in ("consent", "export", "webhook"):
            groups: list[FailureGroup] = getattr(self, stage)
            self.hidden[stage] = max(len(groups) - limit, 0)
            setattr(self, stage, groups[:limit])


class _Grouper:
    def __init__(self, days: list[dt.date]) -> None:
        self.days = days
        self.index = {day: i for i, day in enumerate(days)}
        self.groups: dict[tuple[Any, ...], FailureGroup] = {}

    def add(self, key: tuple[Any, ...], day: dt.date, n: int, make: Any) -> None:
        if day not in self.index:
            return
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = make()
        group.trend[self.index[day]] += n

    def sorted(self) -> list[FailureGroup]:
        return sorted(self.groups.values(), key=lambda g: (-g.count, g.label, g.where))


def _link(path: str, **query: Any) -> str:
    return path + "?" + urlencode({k: v for k, v in query.items() if v is not None})


async def load_failures(
    db: AsyncSession, viewer: Viewer, now: dt.datetime, days: int
) -> FailureReview:
    calendar = day_range(now, days)
    review = FailureReview(days=calendar)
    review.consent = await _consent(db, viewer, now, calendar, days)
    review.export = await _exports(db, viewer, now, calendar, days)
    review.webhook = await _webhooks(db, viewer, now, calendar, days)
    review.keep_largest(MAX_GROUPS)
    return review


async def _consent(
    db: AsyncSession, viewer: Viewer, now: dt.datetime, calendar: list[dt.date], days: int
) -> list[FailureGroup]:
    grouper = _Grouper(calendar)
    blank = [0] * len(calendar)
    since = period_start(now, days)

    def add_rows(rows: Iterable[tuple[Any, ...]], fixed_error: str | None = None) -> None:
        for day, error, endpoint_id, name, n in rows:
            kind = fixed_error or error or "unknown"
            grouper.add(
                (kind, endpoint_id),
                day,
                n,
                lambda kind=kind, endpoint_id=endpoint_id, name=name: FailureGroup(
                    label=consent_label(kind),
                    where=name,
                    detail="",
                    trend=list(blank),
                    link=_link(
                        "/failures/consent", kind=kind, endpoint=endpoint_id, days=str(days)
                    ),
                ),
            )

    params = viewer.params(since=since)
    org = viewer.org_clause("a.org_id", params)
    failed = await db.execute(
        text(
            f"""
            SELECT (a.occurred_at AT TIME ZONE 'UTC')::date, a.detail->>'error',
                   a.detail->>'endpoint_id',
                   {ENDPOINT_NAME_SQL.format(column="a.detail->>'endpoint_id'")}, count(*)
            FROM audit_log a
            LEFT JOIN catalog_endpoints e ON e.id = a.detail->>'endpoint_id'
            WHERE a.action = 'consent.failed' AND a.occurred_at >= :since{org}
              AND {MODE_OF_ENDPOINT_SQL} = :mode
            GROUP BY 1, 2, 3, 4
            """  # noqa: S608 (fragments are constants; values are bound)
        ),
        params,
    )
    add_rows(failed)
    params = viewer.params(since=since, now=now)
    org = viewer.org_clause("f.org_id", params)
    abandoned = await db.execute(
        text(
            f"""
            SELECT (f.created_at AT TIME ZONE 'UTC')::date, 'abandoned', f.endpoint_id,
                   {ENDPOINT_NAME_SQL.format(column="f.endpoint_id")}, count(*)
            FROM consent_flows f
            LEFT JOIN catalog_endpoints e ON e.id = f.endpoint_id
            WHERE f.api_mode = :mode AND f.created_at >= :since{org}
              AND f.used_at IS NULL AND f.expires_at < :now
            GROUP BY 1, 2, 3, 4
            """  # noqa: S608
        ),
        params,
    )
    add_rows(abandoned, "abandoned")
    params = viewer.params(since=since)
    org = viewer.org_clause("r.org_id", params)
    ended = await db.execute(
        text(
            f"""
            SELECT (r.recorded_at AT TIME ZONE 'UTC')::date, 'refresh_refused', r.endpoint_id,
                   {ENDPOINT_NAME_SQL.format(column="r.endpoint_id")}, count(*)
            FROM consent_records r
            LEFT JOIN catalog_endpoints e ON e.id = r.endpoint_id
            WHERE r.event = 'revoked' AND r.recorded_at >= :since AND r.api_mode = :mode{org}
              AND r.detail->>'reason' = 'refresh_refused'
            GROUP BY 1, 2, 3, 4
            """  # noqa: S608
        ),
        params,
    )
    add_rows(ended, "refresh_refused")
    return grouper.sorted()


async def _exports(
    db: AsyncSession, viewer: Viewer, now: dt.datetime, calendar: list[dt.date], days: int
) -> list[FailureGroup]:
    grouper = _Grouper(calendar)
    params = viewer.params(since=period_start(now, days))
    org = viewer.org_clause("t.org_id", params)
    rows = await db.execute(
        text(
            f"""
            SELECT (t.created_at AT TIME ZONE 'UTC')::date, t.failure_reason,
                   c.catalog_endpoint_id,
                   coalesce(b.name, c.catalog_brand_id, c.catalog_endpoint_id, '(unknown)'),
                   coalesce(t.progress->>'failed_in_phase', 'not recorded'), count(*)
            FROM export_tasks t
            LEFT JOIN org_connections c ON c.org_connection_id = t.org_connection_id
            LEFT JOIN catalog_brands b ON b.id = c.catalog_brand_id
            WHERE t.api_mode = :mode AND t.created_at >= :since{org} AND {FAILED_SQL}
            GROUP BY 1, 2, 3, 4, 5
            """  # noqa: S608
        ),
        params,
    )
    blank = [0] * len(calendar)
    for day, reason, endpoint_id, name, phase, n in rows:
        grouper.add(
            (reason, endpoint_id, phase),
            day,
            n,
            lambda reason=reason, endpoint_id=endpoint_id, name=name, phase=phase: FailureGroup(
                label=reason,
                where=name,
                detail=phase,
                trend=list(blank),
                link=_link(
                    "/exports", status="failed", reason=reason, endpoint=endpoint_id, days=str(days)
                ),
            ),
        )
    return grouper.sorted()


async def _webhooks(
    db: AsyncSession, viewer: Viewer, now: dt.datetime, calendar: list[dt.date], days: int
) -> list[FailureGroup]:
    grouper = _Grouper(calendar)
    since = period_start(now, days)
    params = viewer.params(since=since)
    org = viewer.org_clause("w.org_id", params)
    rows = await db.execute(
        text(
            f"""
            SELECT (a.attempted_at AT TIME ZONE 'UTC')::date, a.endpoint_id, w.url,
                   a.status_code, count(*)
            FROM webhook_endpoints w
            JOIN webhook_attempts a ON a.endpoint_id = w.endpoint_id
            WHERE w.api_mode = :mode{org} AND a.attempted_at >= :since
              AND a.outcome <> 'succeeded'
            GROUP BY 1, 2, 3, 4
            """  # noqa: S608
        ),
        params,
    )
    blank = [0] * len(calendar)
    for day, endpoint_id, url, code, n in rows:
        shown = str(code) if code is not None else "no answer"
        grouper.add(
            (endpoint_id, shown),
            day,
            n,
            lambda endpoint_id=endpoint_id, url=url, shown=shown, code=code: FailureGroup(
                label="HTTP " + shown if code is not None else "No answer (timeout, refused)",
                where=url,
                detail=shown,
                trend=list(blank),
                link=_link(
                    "/webhooks/deliveries",
                    endpoint=endpoint_id,
                    code=str(code) if code is not None else "none",
                    days=str(days),
                ),
            ),
        )
    given_up = await db.execute(
        text(
            f"""
            SELECT d.endpoint_id, count(*)
            FROM webhook_endpoints w
            JOIN webhook_deliveries d ON d.endpoint_id = w.endpoint_id
            WHERE w.api_mode = :mode{org} AND d.created_at >= :since AND d.status = 'failed'
            GROUP BY 1
            """  # noqa: S608
        ),
        params,
    )
    failed_deliveries: dict[str, int] = {endpoint: n for endpoint, n in given_up}
    groups = grouper.sorted()
    for (endpoint_id, _code), group in grouper.groups.items():
        group.extra = failed_deliveries.get(endpoint_id, 0)
    return groups
