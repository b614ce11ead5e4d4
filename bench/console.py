"""Benchmark: console page times with 10,000 exports and 100,000 webhook attempts.

Fills a fresh database with bulk `INSERT … SELECT generate_series` (a few seconds): one
organization, 1,000 connections over the sandbox's health systems, 10,000 exports over 30 days
(80 % success, 15 % failed over the failure reasons and phases, 5 % pending), 10,000 webhook events
each delivered to 5 endpoints (a tenth given up on), two attempts per delivery: 100,000 attempts,
about a fifth of them failed (a 500, or no answer). Then serves the platform API (console
mounted) on
loopback, signs an operator and a customer in, and times sequential GETs of the overview and the
failure review (30-day period), each beside a baseline in the same run: `GET /healthz` (the
framework's own round trip). Prints p50/p95 in ms; the goal is a p95 under 300 ms.

    .venv/bin/python bench/console.py [--requests 40] [--json]

Uses EHICONNECT_DATABASE_URL when set (a fresh database is created on that server), otherwise
an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from ehiconnect.api.app import create_app
from ehiconnect.consolekit import accounts
from ehiconnect.consolekit.models import ROLE_CUSTOMER, ROLE_OPERATOR
from ehiconnect.orgs.service import create_org
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import serve_in_thread

EXPORTS = 10_000
ENDPOINTS = 5
EVENTS = 10_000
ATTEMPTS = 2 * EVENTS * ENDPOINTS  # 100,000
PASSWORD = "bench password for the console"  # noqa: S105 (a throwaway account)
GOAL_MS = 300.0

FILL = [
    # Connections over the catalog's sandbox endpoints (whatever the sandbox sync put there).
    """
    INSERT INTO org_connections (org_connection_id, org_id, api_mode, catalog_brand_id,
        catalog_portal_id, catalog_endpoint_id, platform_type, status, scope, external_id,
        created_at, updated_at)
    SELECT gen_random_uuid()::text, %(org)s, 'test', 'bench-brand-' || (n %% 20),
        'bench-portal-' || (n %% 20), 'bench-endpoint-' || (n %% 20), 'sandbox',
        CASE WHEN n %% 50 = 0 THEN 'revoked' ELSE 'authorized' END,
        'launch/patient patient/*.read offline_access', 'user-' || n,
        now() - (n %% 30) * interval '1 day', now()
    FROM generate_series(1, 1000) AS n
    """,
    """
    INSERT INTO export_tasks (task_id, org_id, org_connection_id, api_mode, status, phase,
        progress, failure_reason, failure_description, created_at, started_at, deadline_at,
        completed_at, runs, failures, file_size, stats, error_count)
    SELECT md5('task' || n), %(org)s, c.org_connection_id, 'test',
        CASE WHEN n %% 20 < 16 THEN 'success' WHEN n %% 20 < 19 THEN 'failed' ELSE 'pending' END,
        CASE WHEN n %% 20 < 16 THEN 'done' WHEN n %% 20 < 19 THEN 'failed' ELSE 'crawling' END,
        CASE WHEN n %% 20 BETWEEN 16 AND 18
             THEN jsonb_build_object('failed_in_phase',
                  (ARRAY['discovering','crawling','hydrating'])[1 + n %% 3])
             ELSE jsonb_build_object('resources', n %% 500) END,
        CASE WHEN n %% 20 BETWEEN 16 AND 18 THEN (ARRAY['token_refresh_failure',
             'scope_patient_missing', 'resource_patient_failure', 'timeout'])[1 + n %% 4] END,
        CASE WHEN n %% 20 BETWEEN 16 AND 18 THEN 'bench failure' END,
        now() - (n %% 30) * interval '1 day' - (n %% 1440) * interval '1 minute',
        now() - (n %% 30) * interval '1 day' - (n %% 1440) * interval '1 minute',
        now() + interval '1 day',
        CASE WHEN n %% 20 < 19 THEN now() - (n %% 30) * interval '1 day'
             - (n %% 1440) * interval '1 minute' + (5 + n %% 300) * interval '1 second' END,
        1, 0, 1000 * (n %% 5000),
        jsonb_build_object('total_resources', n %% 500), 0
    FROM generate_series(1, %(exports)s) AS n
    JOIN LATERAL (SELECT org_connection_id FROM org_connections
                  ORDER BY org_connection_id OFFSET (n %% 1000) LIMIT 1) c ON true
    """,
    """
    INSERT INTO webhook_endpoints (endpoint_id, org_id, api_mode, url, event_types, status,
        created_at)
    SELECT gen_random_uuid()::text, %(org)s, 'test', 'https://hooks' || n || '.example/in',
        '{}'::text[], 'enabled', now() - interval '40 days'
    FROM generate_series(1, %(endpoints)s) AS n
    """,
    """
    INSERT INTO webhook_events (event_id, org_id, api_mode, type, data, created_at)
    SELECT md5('event' || n)::uuid::text, %(org)s, 'test',
        (ARRAY['patient.ehi_export_success', 'patient.ehi_export_failed',
               'patient.connection_success'])[1 + n %% 3],
        '{}'::jsonb, now() - (n %% 30) * interval '1 day' - (n %% 1440) * interval '1 minute'
    FROM generate_series(1, %(events)s) AS n
    """,
    # Every event to every endpoint.
    """
    INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, created_at,
        completed_at)
    SELECT e.event_id, w.endpoint_id, 'succeeded', 2, e.created_at, e.created_at + interval '5 s'
    FROM webhook_events e CROSS JOIN webhook_endpoints w
    """,
    """
    UPDATE webhook_deliveries SET status = 'failed' WHERE id %% 10 = 0
    """,
    # Two attempts per delivery: the first failed for a third of them (a 500, or no answer),
    # the second failed where the delivery was given up on.
    """
    INSERT INTO webhook_attempts (delivery_id, event_id, endpoint_id, attempt_number,
        attempted_at, status_code, latency_ms, response_excerpt, error, outcome)
    SELECT d.id, d.event_id, d.endpoint_id, k, d.created_at + (k - 1) * interval '5 s',
        CASE WHEN failed AND d.id %% 2 = 0 THEN NULL WHEN failed THEN 500 ELSE 200 END,
        20 + (d.id * k) %% 400, CASE WHEN failed THEN 'error' ELSE 'ok' END,
        CASE WHEN failed AND d.id %% 2 = 0 THEN 'connect timeout' END,
        CASE WHEN failed THEN 'failed' ELSE 'succeeded' END
    FROM webhook_deliveries d, generate_series(1, 2) AS k,
        LATERAL (SELECT (k = 1 AND d.id %% 3 = 0) OR (k = 2 AND d.status = 'failed')
                 AS failed) f
    """,
]


def timed(client: httpx.Client, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        answer = client.get(path, headers={"Accept": "text/html"})
        times.append((time.perf_counter() - start) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    return times


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def sign_in(base_url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60, follow_redirects=False)
    page = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    answer = client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "login_token": token.group(1)},
    )
    if answer.status_code != 303:
        raise SystemExit(f"sign-in failed: {answer.status_code} {answer.text[:200]}")
    return client


async def prepare(settings: Settings, url: str) -> tuple[str, float]:
    async with Runtime.open(settings) as runtime, runtime.database.transaction() as session:
        org = await create_org(session, runtime.clock, name="Bench Health")
        for email, role, org_id in (
            ("ops@bench.example", ROLE_OPERATOR, None),
            ("me@bench.example", ROLE_CUSTOMER, org.org_id),
        ):
            await accounts.add_user(
                session,
                runtime.clock,
                realm="platform",
                email=email,
                password=PASSWORD,
                role=role,
                org_id=org_id,
            )
    started = time.perf_counter()
    params = {"org": org.org_id, "exports": EXPORTS, "events": EVENTS, "endpoints": ENDPOINTS}
    with psycopg.connect(re.sub(r"^postgresql\+\w+://", "postgresql://", url)) as conn:
        for statement in FILL:
            conn.execute(statement, params)
        conn.execute("ANALYZE")
    return org.org_id, time.perf_counter() - started


def database_for_bench(workdir: Path) -> str:
    server = os.environ.get("EHICONNECT_DATABASE_URL")
    if server:
        name = f"bench_console_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        head, sep, query = server.partition("?")
        return f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"
    from ehiconnect.db.embedded import ensure_embedded_postgres

    return ensure_embedded_postgres(workdir / "pg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        workdir = Path(tmp)
        url = database_for_bench(workdir)
        settings = Settings(data_dir=workdir / "data", database_url=url)
        _, fill_seconds = asyncio.run(prepare(settings, url))
        figures: dict[str, Any] = {
            "exports": EXPORTS,
            "webhook_attempts": ATTEMPTS,
            "fill_seconds": round(fill_seconds, 1),
        }
        try:
            measure(settings, args.requests, figures)
        finally:
            if not os.environ.get("EHICONNECT_DATABASE_URL"):
                from ehiconnect.db.embedded import stop_embedded_postgres

                stop_embedded_postgres(workdir / "pg")
    report(figures, args.requests, fill_seconds, as_json=args.json)


def measure(settings: Settings, requests: int, figures: dict[str, Any]) -> None:
    with serve_in_thread(create_app(settings)) as server:
        for who in ("ops@bench.example", "me@bench.example"):
            client = sign_in(server.url, who)
            try:
                timed(client, "/console/?days=30", 3)  # warm up (connections, templates)
                runs = {
                    "healthz (baseline)": timed(client, "/healthz", requests),
                    "overview": timed(client, "/console/?days=30", requests),
                    "failure review": timed(client, "/console/failures?days=30", requests),
                }
            finally:
                client.close()
            role = "operator" if who.startswith("ops") else "customer"
            figures[role] = {
                page: {"p50_ms": round(p(t, 50), 1), "p95_ms": round(p(t, 95), 1)}
                for page, t in runs.items()
            }


def report(figures: dict[str, Any], requests: int, fill_seconds: float, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
        return
    lines = [
        f"console pages with {EXPORTS:,} exports and {ATTEMPTS:,} webhook attempts "
        f"(filled in {fill_seconds:.1f} s); {requests} sequential GETs each, 30-day period",
    ]
    for role in ("operator", "customer"):
        for page, f in figures[role].items():
            if page.startswith("healthz"):
                mark = ""
            elif f["p95_ms"] < GOAL_MS:
                mark = "  ok"
            else:
                mark = f"  OVER the {GOAL_MS:.0f} ms goal"
            lines.append(
                f"  {role:8} {page:20} p50 {f['p50_ms']:7.1f} ms   p95 {f['p95_ms']:7.1f} ms{mark}"
            )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
