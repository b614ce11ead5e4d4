"""Lists and single objects for the console's pages, always within the viewer's reach.

A lookup of an object the viewer may not see (another organization's, or the other mode's)
returns None, exactly like a missing one: ids cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.console.queries.overview import period_start
from ehiconnect.console.viewer import Viewer

PAGE_SIZE = 50
MAX_PAGE = 200


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    page: int
    more: bool


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_task_id(value: str) -> bool:
    return len(value) == 32 and all(ch in "0123456789abcdef" for ch in value)


async def _page(db: AsyncSession, sql: str, params: dict[str, Any], page: int) -> Page:
    page = max(1, min(page, MAX_PAGE))
    params = {**params, "limit": PAGE_SIZE + 1, "offset": (page - 1) * PAGE_SIZE}
    rows = [dict(row) for row in (await db.execute(text(sql), params)).mappings().all()]
    return Page(rows=rows[:PAGE_SIZE], page=page, more=len(rows) > PAGE_SIZE)


# ---- connections ---------------------------------------------------------------------------------

_CONNECTION_COLUMNS = """
    c.org_connection_id, c.org_id, o.name AS org_name, c.api_mode, c.status, c.scope,
    c.external_id, c.platform_type, c.catalog_endpoint_id, c.consent_expires_at,
    c.created_at, c.updated_at,
    coalesce(b.name, c.catalog_brand_id, c.catalog_endpoint_id) AS health_system
"""
_CONNECTION_FROM = """
    FROM org_connections c
    JOIN organizations o ON o.org_id = c.org_id
    LEFT JOIN catalog_brands b ON b.id = c.catalog_brand_id
"""


async def list_connections(
    db: AsyncSession, viewer: Viewer, *, status: str | None, external_id: str | None, page: int
) -> Page:
    params = viewer.params()
    where = "c.api_mode = :mode" + viewer.org_clause("c.org_id", params)
    if status:
        where += " AND c.status = :status"
        params["status"] = status
    if external_id:
        where += " AND c.external_id = :external_id"
        params["external_id"] = external_id
    return await _page(
        db,
        f"SELECT {_CONNECTION_COLUMNS} {_CONNECTION_FROM} WHERE {where} "
        "ORDER BY c.created_at DESC, c.org_connection_id LIMIT :limit OFFSET :offset",
        params,
        page,
    )


async def get_connection(
    db: AsyncSession, viewer: Viewer, org_connection_id: str
) -> dict[str, Any] | None:
    if not _is_uuid(org_connection_id):
        return None
    params = viewer.params(id=org_connection_id)
    where = "c.org_connection_id = :id AND c.api_mode = :mode" + viewer.org_clause(
        "c.org_id", params
    )
    row = (
        (
            await db.execute(
                text(f"SELECT {_CONNECTION_COLUMNS} {_CONNECTION_FROM} WHERE {where}"),
                params,
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def consent_history(db: AsyncSession, org_connection_id: str) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            """
            SELECT recorded_at, event, requested_scope, granted_scope, external_id, detail
            FROM consent_records WHERE org_connection_id = :id ORDER BY id DESC LIMIT 100
            """
        ),
        {"id": org_connection_id},
    )
    return [dict(row) for row in rows.mappings().all()]


# ---- exports -------------------------------------------------------------------------------------

_EXPORT_COLUMNS = """
    t.task_id, t.org_id, o.name AS org_name, t.org_connection_id, t.api_mode, t.status, t.phase,
    t.progress, t.failure_reason, t.failure_description, t.created_at, t.started_at,
    t.completed_at, t.expires_at, t.file_size, t.sha256, t.stats, t.error_count, t.error_key,
    t.runs,
    extract(epoch FROM coalesce(t.completed_at, :now) - coalesce(t.started_at, t.created_at))
      AS duration_seconds,
    coalesce(b.name, c.catalog_brand_id, c.catalog_endpoint_id) AS health_system,
    c.catalog_endpoint_id, c.external_id
"""
_EXPORT_FROM = """
    FROM export_tasks t
    JOIN organizations o ON o.org_id = t.org_id
    LEFT JOIN org_connections c ON c.org_connection_id = t.org_connection_id
    LEFT JOIN catalog_brands b ON b.id = c.catalog_brand_id
"""


async def list_exports(
    db: AsyncSession,
    viewer: Viewer,
    now: dt.datetime,
    *,
    status: str | None,
    reason: str | None,
    endpoint: str | None,
    connection: str | None,
    days: int | None,
    page: int,
) -> Page:
    params = viewer.params(now=now)
    where = "t.api_mode = :mode" + viewer.org_clause("t.org_id", params)
    if status:
        where += " AND t.status = :status"
        params["status"] = status
    if reason:
        where += " AND t.failure_reason = :reason"
        params["reason"] = reason
    if endpoint:
        where += " AND c.catalog_endpoint_id = :endpoint"
        params["endpoint"] = endpoint
    if connection:
        where += " AND t.org_connection_id = :connection"
        params["connection"] = connection
    if days:
        where += " AND t.created_at >= :since"
        params["since"] = period_start(now, days)
    return await _page(
        db,
        f"SELECT {_EXPORT_COLUMNS} {_EXPORT_FROM} WHERE {where} "
        "ORDER BY t.created_at DESC, t.task_id LIMIT :limit OFFSET :offset",
        params,
        page,
    )


async def get_export(
    db: AsyncSession, viewer: Viewer, now: dt.datetime, task_id: str
) -> dict[str, Any] | None:
    if not _is_task_id(task_id):
        return None
    params = viewer.params(id=task_id, now=now)
    where = "t.task_id = :id AND t.api_mode = :mode" + viewer.org_clause("t.org_id", params)
    row = (
        (
            await db.execute(
                text(f"SELECT {_EXPORT_COLUMNS} {_EXPORT_FROM} WHERE {where}"),
                params,
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def export_errors(db: AsyncSession, task_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The first staged OperationOutcomes of a task still running (packaging removes them)."""
    rows = await db.execute(
        text("SELECT error_id, outcome FROM export_errors WHERE task_id = :id LIMIT :limit"),
        {"id": task_id, "limit": limit},
    )
    return [dict(row) for row in rows.mappings().all()]


# ---- webhooks ------------------------------------------------------------------------------------


async def list_endpoints(db: AsyncSession, viewer: Viewer) -> list[dict[str, Any]]:
    params = viewer.params()
    where = "w.api_mode = :mode" + viewer.org_clause("w.org_id", params)
    rows = await db.execute(
        text(
            f"""
            SELECT w.endpoint_id, w.org_id, o.name AS org_name, w.url, w.event_types, w.status,
                   w.disabled_reason, w.failing_since, w.created_at
            FROM webhook_endpoints w JOIN organizations o ON o.org_id = w.org_id
            WHERE {where} ORDER BY w.created_at DESC LIMIT 200
            """  # noqa: S608
        ),
        params,
    )
    return [dict(row) for row in rows.mappings().all()]


_DELIVERY_COLUMNS = """
    d.id AS delivery_id, d.event_id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at,
    d.created_at, d.completed_at, w.url, w.org_id, o.name AS org_name, ev.type AS event_type,
    last.status_code AS last_status_code, last.latency_ms AS last_latency_ms,
    last.attempted_at AS last_attempted_at
"""
_DELIVERY_FROM = """
    FROM webhook_deliveries d
    JOIN webhook_endpoints w ON w.endpoint_id = d.endpoint_id
    JOIN organizations o ON o.org_id = w.org_id
    JOIN webhook_events ev ON ev.event_id = d.event_id
    LEFT JOIN LATERAL (
      SELECT a.status_code, a.latency_ms, a.attempted_at FROM webhook_attempts a
      WHERE a.delivery_id = d.id ORDER BY a.attempt_number DESC, a.id DESC LIMIT 1
    ) last ON true
"""


async def list_deliveries(
    db: AsyncSession,
    viewer: Viewer,
    now: dt.datetime,
    *,
    endpoint: str | None,
    status: str | None,
    code: str | None,
    days: int | None,
    page: int,
) -> Page:
    params = viewer.params()
    where = "w.api_mode = :mode" + viewer.org_clause("w.org_id", params)
    if endpoint:
        where += " AND d.endpoint_id = :endpoint"
        params["endpoint"] = endpoint
    if status:
        where += " AND d.status = :status"
        params["status"] = status
    if days:
        where += " AND d.created_at >= :since"
        params["since"] = period_start(now, days)
    if code:
        # Deliveries with at least one failed attempt answered with that code (or none).
        code_test = "a.status_code IS NULL" if code == "none" else "a.status_code = :code"
        if code != "none":
            params["code"] = int(code)
        where += (
            " AND EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.delivery_id = d.id"  # noqa: S608 (constant fragments)
            f" AND a.outcome <> 'succeeded' AND {code_test})"
        )
    return await _page(
        db,
        f"SELECT {_DELIVERY_COLUMNS} {_DELIVERY_FROM} WHERE {where} "
        "ORDER BY d.created_at DESC, d.id DESC LIMIT :limit OFFSET :offset",
        params,
        page,
    )


async def get_delivery(db: AsyncSession, viewer: Viewer, delivery_id: int) -> dict[str, Any] | None:
    params = viewer.params(id=delivery_id)
    where = "d.id = :id AND w.api_mode = :mode" + viewer.org_clause("w.org_id", params)
    row = (
        (
            await db.execute(
                text(f"SELECT {_DELIVERY_COLUMNS} {_DELIVERY_FROM} WHERE {where}"),
                params,
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def delivery_attempts(db: AsyncSession, delivery_id: int) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            """
            SELECT attempt_number, attempted_at, status_code, latency_ms, outcome,
                   response_excerpt, error
            FROM webhook_attempts WHERE delivery_id = :id
            ORDER BY attempt_number DESC, id DESC LIMIT 100
            """
        ),
        {"id": delivery_id},
    )
    return [dict(row) for row in rows.mappings().all()]


# ---- consent failure cases -----------------------------------------------------------------------


async def consent_cases(
    db: AsyncSession,
    viewer: Viewer,
    now: dt.datetime,
    *,
    kind: str,
    endpoint: str | None,
    days: int,
) -> list[dict[str, Any]]:
    """The individual cases behind one consent group of the failure review (newest 200)."""
    params = viewer.params(since=period_start(now, days), now=now)
    endpoint_sql = ""
    if kind == "abandoned":
        org = viewer.org_clause("f.org_id", params)
        if endpoint:
            endpoint_sql = " AND f.endpoint_id = :endpoint"
        sql = f"""
            SELECT f.created_at AS at, f.org_id, f.endpoint_id, f.external_id,
                   NULL AS org_connection_id, 'abandoned' AS error
            FROM consent_flows f
            WHERE f.api_mode = :mode AND f.created_at >= :since{org}{endpoint_sql}
              AND f.used_at IS NULL AND f.expires_at < :now
            ORDER BY f.created_at DESC LIMIT 200
        """  # noqa: S608
    elif kind == "refresh_refused":
        org = viewer.org_clause("r.org_id", params)
        if endpoint:
            endpoint_sql = " AND r.endpoint_id = :endpoint"
        sql = f"""
            SELECT r.recorded_at AS at, r.org_id, r.endpoint_id, r.external_id,
                   r.org_connection_id, 'refresh_refused' AS error
            FROM consent_records r
            WHERE r.event = 'revoked' AND r.api_mode = :mode AND r.recorded_at >= :since{org}
              AND r.detail->>'reason' = 'refresh_refused'{endpoint_sql}
            ORDER BY r.recorded_at DESC LIMIT 200
        """  # noqa: S608
    else:
        org = viewer.org_clause("a.org_id", params)
        params["kind"] = kind
        if endpoint:
            endpoint_sql = " AND a.detail->>'endpoint_id' = :endpoint"
        sql = f"""
            SELECT a.occurred_at AS at, a.org_id, a.detail->>'endpoint_id' AS endpoint_id,
                   NULL AS external_id, NULL AS org_connection_id, a.detail->>'error' AS error
            FROM audit_log a
            LEFT JOIN catalog_endpoints e ON e.id = a.detail->>'endpoint_id'
            WHERE a.action = 'consent.failed' AND a.occurred_at >= :since{org}
              AND (CASE WHEN e.sandbox THEN 'test' ELSE 'live' END) = :mode
              AND a.detail->>'error' = :kind{endpoint_sql}
            ORDER BY a.occurred_at DESC LIMIT 200
        """  # noqa: S608
    if endpoint:
        params["endpoint"] = endpoint
    rows = await db.execute(text(sql), params)
    return [dict(row) for row in rows.mappings().all()]
