"""Benchmark and chaos run of fleet mode: many `serve` and `worker` processes, one PostgreSQL, S3.

Starts the whole fleet itself on loopback (bench/fleet_lib.py): a PostgreSQL server from its own
binaries on its own port (max_connections=100, the fleet's role capped at 80), `rclone serve s3`,
the sandbox with 50 ms added to every FHIR answer, 2 `ehiconnect serve` behind a round-robin TCP
proxy, 3 `ehiconnect worker`, each process with its own data directory and only `EHICONNECT_*`
variables in common (one vault key, S3 storage, the proxy as public base URL), and a webhook
receiver that verifies every signature with `standardwebhooks`.

1. Baseline: a few consents exported through ONE worker (the other two not started yet); these
   exports are also the reference content of each persona (sha256).
2. Load: N consents through the HTTP consent flow (the sandbox portal driven without a browser),
   spread over the three sandbox systems and their small and tiny personas, then N exports
   requested at once through the proxy, all three workers running.

Prints exports/min, p50/p99 of export duration and queue wait, webhook p99 (event commit to
receipt), PostgreSQL connections in use (peak, sampled from pg_stat_activity, by
application_name), each process's peak RSS, and errors (non-2xx answers, failed exports with
reasons, tracebacks in process logs), the baseline beside each figure.

With --chaos the load runs while a random worker is SIGKILLed and restarted every few seconds,
every database connection of the fleet is terminated once (pg_terminate_backend), an API process
is SIGKILLed and restarted, and the sandbox answers 429 bursts. Then it checks: every export is
success or failed with a reason, every success is byte-identical (sha256 of the file downloaded
through the API) to the same persona's baseline export, every webhook event arrived at least
once, and no job is `doing` without a live worker. Exit status 1 when a check fails (also
without --chaos).

    .venv/bin/python bench/fleet.py [--quick] [--chaos] [--json] [--exports 100]

Only loopback traffic; bounded in count and time; every process started here is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ehiconnect.testing.servers import free_port
from fleet_lib import (
    ORIGIN,
    SLUGS,
    ActivitySampler,
    Fleet,
    FleetError,
    Postgres,
    RoundRobinProxy,
    WebhookReceiver,
    base_env,
    connect_patient,
    export_rows,
    postgres_cpu_seconds,
    running_postgres,
    running_s3,
    set_faults,
    sha256_of_download,
    stalled_jobs,
)

PERSONAS = [
    ("harbor", "amy"),
    ("cedar", "theo"),
    ("summit", "carl"),
    ("harbor", "tina"),
    ("cedar", "beth"),
    ("summit", "tess"),
]
STALLED_AFTER_S = 10.0  # the default jobs.stalled_after_seconds


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ---------------------------------------------------------------- HTTP with a client's retries


@dataclass
class Errors:
    http: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            self.http[what] += 1


def call(
    errors: Errors, method: str, url: str, *, auth: tuple[str, str], body: Any = None
) -> httpx.Response:
    """One API call as a careful customer makes it: retried on 429, 5xx and transport errors."""
    path = "/" + url.split("/", 3)[3].split("?")[0]
    label = path if "/ehi-export/" not in path else path.rsplit("/", 1)[0] + "/{id}"
    for attempt in range(10):
        try:
            with httpx.Client(timeout=60, auth=auth) as client:
                response = client.request(method, url, json=body)
        except httpx.TransportError as exc:
            errors.add(f"{method} {label}: {type(exc).__name__}")
        else:
            if response.status_code < 300:
                return response
            errors.add(f"{method} {label}: HTTP {response.status_code}")
            if response.status_code not in (429, 502, 503, 504) and response.status_code < 500:
                raise FleetError(f"{method} {label}: HTTP {response.status_code} {response.text}")
        time.sleep(min(5.0, 0.25 * 2**attempt))
    raise FleetError(f"{method} {label}: gave up after 10 attempts")


def consent_all(
    api_url: str, public_id: str, personas: list[tuple[str, str]], errors: Errors
) -> list[str]:
    def one(persona: tuple[str, str]) -> str:
        for attempt in range(6):
            try:
                return connect_patient(api_url, public_id, *persona)
            except (FleetError, httpx.TransportError, KeyError) as exc:
                errors.add(f"consent: {type(exc).__name__}: {str(exc)[:80]}")
                time.sleep(0.5 * 2**attempt)
        raise FleetError(f"consent of {persona} failed 6 times")

    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(one, personas))


def start_exports(
    api_url: str, auth: tuple[str, str], connections: list[str], errors: Errors
) -> list[str]:
    """Every export requested at the same moment (one thread each)."""
    barrier = threading.Barrier(len(connections))

    def one(connection_id: str) -> str:
        barrier.wait()
        response = call(
            errors,
            "POST",
            f"{api_url}/v1/bridge/fhir/ehi-export",
            auth=auth,
            body={"org_connection_id": connection_id},
        )
        return str(response.json()["data"]["task_id"])

    with ThreadPoolExecutor(max_workers=len(connections)) as pool:
        return list(pool.map(one, connections))


# ---------------------------------------------------------------- waiting and figures


@dataclass
class Poller:
    """Asks the API for the status of a few pending exports each round, as customers do."""

    api_url: str
    auth: tuple[str, str]
    errors: Errors
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def poll(self, pending: list[str]) -> None:
        for task in self.rng.sample(pending, min(5, len(pending))):
            with contextlib.suppress(FleetError):
                call(
                    self.errors,
                    "GET",
                    f"{self.api_url}/v1/bridge/fhir/ehi-export/{task}",
                    auth=self.auth,
                )


def wait_for(
    pg: Postgres, fleet: Fleet, tasks: list[str], timeout: float, poller: Poller
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        fleet.sample_rss()
        rows = export_rows(pg)
        mine = {t: rows[t] for t in tasks if t in rows}
        poller.poll([t for t, r in mine.items() if r["status"] == "pending"])
        counts = Counter(row["status"] for row in mine.values())
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        if summary != last:
            log(f"exports: {summary}")
            last = summary
        if counts.get("pending", 0) == 0 or time.monotonic() > deadline:
            return mine
        time.sleep(1.0)


def wait_for_workers(pg: Postgres, fleet: Fleet, count: int, timeout: float = 90) -> None:
    """Until `count` workers beat their heartbeat (started workers take seconds to be ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = pg.admin(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - interval '5 seconds'"
        )
        if int(rows[0][0]) >= count:
            return
        for name, proc in fleet.procs.items():
            if proc.popen.poll() is not None:
                raise FleetError(f"{name} exited:\n{fleet.log_tail(name)}")
        time.sleep(0.2)
    raise FleetError(f"{count} workers did not beat within {timeout:.0f} s")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def seconds(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def figures(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows.values() if r["completed_at"]]
    waits = [
        s for r in rows.values() if (s := seconds(r["created_at"], r["started_at"])) is not None
    ]
    durations = [s for r in done if (s := seconds(r["created_at"], r["completed_at"])) is not None]
    span = (
        seconds(min(r["created_at"] for r in rows.values()), max(r["completed_at"] for r in done))
        if done
        else None
    )
    return {
        "exports": len(rows),
        "succeeded": sum(r["status"] == "success" for r in rows.values()),
        "exports_per_min": round(len(done) / span * 60, 1) if span else None,
        "wall_s": round(span, 1) if span else None,
        "duration_p50_s": pct(durations, 50),
        "duration_p99_s": pct(durations, 99),
        "queue_wait_p50_s": pct(waits, 50),
        "queue_wait_p99_s": pct(waits, 99),
        "runs_max": max((r["runs"] for r in rows.values()), default=0),
        "file_mb_mean": round(
            statistics.mean([r["file_size"] or 0 for r in done]) / 1e6 if done else 0, 2
        ),
    }


def webhook_figures(
    pg: Postgres, receiver: WebhookReceiver, tasks: list[str], wait_s: float
) -> dict[str, Any]:
    """Every event of the org against the receipts; latency of the tasks' export events."""
    deadline = time.monotonic() + wait_s
    while True:
        events = {
            str(row[0]): row
            for row in pg.admin(
                "SELECT event_id, type, created_at, data->>'task_id' FROM webhook_events"
            )
        }
        receipts = receiver.snapshot()
        received = {r.webhook_id for r in receipts}
        missing = sorted(set(events) - received)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    first: dict[str, float] = {}
    for receipt in receipts:
        first[receipt.webhook_id] = min(
            first.get(receipt.webhook_id, receipt.received), receipt.received
        )
    wanted = set(tasks)
    latencies = [
        (first[event_id] - row[2].timestamp()) * 1000
        for event_id, row in events.items()
        if row[3] in wanted and event_id in first
    ]
    counts = Counter(r.webhook_id for r in receipts)
    return {
        "events": len(events),
        "received": len(receipts),
        "duplicates": sum(c - 1 for c in counts.values()),
        "unverified": sum(not r.verified for r in receipts),
        "missing": missing,
        "missing_types": dict(Counter(str(events[m][1]) for m in missing)),
        "export_event_p50_ms": pct(latencies, 50),
        "export_event_p99_ms": pct(latencies, 99),
    }


# ---------------------------------------------------------------- chaos


@dataclass
class Chaos:
    fleet: Fleet
    pg: Postgres
    sandbox_url: str
    latency_ms: int
    workers: list[str]
    apis: list[str]
    done: threading.Event
    max_s: float
    events: list[str] = field(default_factory=list)
    worker_kills: int = 0
    swept: int = -1
    api_killed: str = ""
    bursts: int = 0

    def note(self, what: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {what}")
        log(f"chaos: {what}")

    def run(self) -> None:
        rng = random.Random(12)
        t0 = time.monotonic()
        next_kill, next_burst = t0 + 3, t0 + 6
        while time.monotonic() - t0 < self.max_s:
            now = time.monotonic()
            essentials = self.worker_kills > 0 and self.swept >= 0 and self.api_killed
            if self.done.is_set() and essentials:
                break
            if now >= next_kill:
                name = rng.choice(self.workers)
                self.fleet.kill(name)
                self.worker_kills += 1
                self.note(f"SIGKILL {name}")
                time.sleep(1.0)
                self.fleet.restart(name)
                next_kill = time.monotonic() + rng.uniform(3, 6)
            if self.swept < 0 and now - t0 > 8:
                self.swept = self.pg.terminate_fleet_backends()
                self.note(f"pg_terminate_backend: {self.swept} connections of the fleet")
            if not self.api_killed and now - t0 > 12:
                self.api_killed = self.apis[-1]
                self.fleet.kill(self.api_killed)
                self.note(f"SIGKILL {self.api_killed}")
                time.sleep(2.0)
                self.fleet.restart(self.api_killed)
            if now >= next_burst:
                self.bursts += 1
                burst = {"latency_ms": self.latency_ms, "rate_limit_share": 0.5, "retry_after_s": 1}
                for slug in SLUGS:
                    set_faults(self.sandbox_url, slug, burst)
                self.note("sandbox: 429 to half the FHIR requests for 3 s")
                time.sleep(3.0)
                for slug in SLUGS:
                    set_faults(self.sandbox_url, slug, {"latency_ms": self.latency_ms})
                next_burst = time.monotonic() + 10
            time.sleep(0.2)


# ---------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ehiconnect-bench-fleet-"))
    n_load = args.exports or (12 if args.quick else 100)
    n_base = 6 if args.quick else 12
    result: dict[str, Any] = {
        "mode": ("chaos" if args.chaos else "load") + (" quick" if args.quick else ""),
        "load_average_at_start": load_average(),
        "processes": {"api": args.apis, "worker": args.workers},
        "worker_concurrency": args.concurrency,
        "sandbox_latency_ms": args.latency_ms,
        "settings": args.env,
    }
    errors = Errors()
    try:
        with contextlib.ExitStack() as stack:
            pg = stack.enter_context(running_postgres())
            s3_url = stack.enter_context(running_s3(root / "s3"))
            receiver = stack.enter_context(WebhookReceiver())
            api_ports = [free_port() for _ in range(args.apis)]
            proxy = stack.enter_context(RoundRobinProxy(api_ports))
            sandbox_port = free_port()
            sandbox_url = f"http://127.0.0.1:{sandbox_port}"
            env = base_env(
                database_url=pg.url, s3_url=s3_url, sandbox_url=sandbox_url, public_url=proxy.url
            )
            # Every client of this bench reaches the APIs from 127.0.0.1: the per-address flood
            # guard on public endpoints would throttle the consents of 100 different patients.
            env["EHICONNECT_API__PUBLIC_RATE_LIMIT_PER_MINUTE"] = "100000"
            env["EHICONNECT_API__PUBLIC_RATE_LIMIT_BURST"] = "10000"
            env["EHICONNECT_JOBS__CONCURRENCY"] = str(args.concurrency)
            env["EHICONNECT_LOG_LEVEL"] = args.log_level
            env.update(dict(item.split("=", 1) for item in args.env))
            fleet = Fleet(root=root, env=env)
            stack.callback(fleet.stop_all)
            fleet.start("sandbox", "sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port))
            fleet.cli("db", "migrate")
            org = json.loads(
                fleet.cli("orgs", "create", "--name", "Fleet", "--origin", ORIGIN, "--json")
            )
            hook = json.loads(
                fleet.cli(
                    "webhooks",
                    "add",
                    "--org",
                    org["org_id"],
                    "--mode",
                    "test",
                    "--url",
                    receiver.url,
                    "--json",
                )
            )
            receiver.secret = hook["secret"]
            auth = (org["test"]["public_id"], org["test"]["private_key"])
            sampler = stack.enter_context(ActivitySampler(pg.admin_url))
            apis = [f"api-{i + 1}" for i in range(args.apis)]
            workers = [f"worker-{i + 1}" for i in range(args.workers)]
            started = time.monotonic()
            for name, port in zip(apis, api_ports, strict=True):
                fleet.start(name, "serve", "--host", "127.0.0.1", "--port", str(port), port=port)
            fleet.start(workers[0], "worker", "--name", workers[0])
            fleet.wait_http("sandbox", sandbox_url + "/")
            for name, port in zip(apis, api_ports, strict=True):
                fleet.wait_http(name, f"http://127.0.0.1:{port}/healthz")
            result["fleet_start_s"] = round(time.monotonic() - started, 1)
            for slug in SLUGS:
                set_faults(sandbox_url, slug, {"latency_ms": args.latency_ms})

            # 1. Baseline (and reference content): exports through one worker.
            base_personas = [PERSONAS[i % len(PERSONAS)] for i in range(n_base)]
            log(f"baseline: {n_base} consents, exports through 1 worker")
            base_connections = consent_all(proxy.url, auth[0], base_personas, errors)
            base_tasks = start_exports(proxy.url, auth, base_connections, errors)
            poller = Poller(proxy.url, auth, errors)
            base_rows = wait_for(pg, fleet, base_tasks, args.timeout, poller)
            result["baseline"] = figures(base_rows)
            result["baseline"]["webhooks"] = webhook_figures(pg, receiver, base_tasks, 30)
            result["baseline"]["db_connections_peak"] = dict(sampler.peak)
            result["baseline"]["db_connections_peak_total"] = sampler.peak_total
            reference: dict[tuple[str, str], str] = {}
            baseline_differs: list[str] = []  # two exports of one persona without any fault
            for persona, task in zip(base_personas, base_tasks, strict=True):
                sha = base_rows[task]["sha256"]
                if base_rows[task]["status"] == "success" and (
                    reference.setdefault(persona, sha) != sha
                ):
                    baseline_differs.append(f"{persona[0]}/{persona[1]}")

            # 2. The fleet: all workers, N consents, N exports at once.
            for name in workers[1:]:
                fleet.start(name, "worker", "--name", name)
            wait_for_workers(pg, fleet, len(workers))
            personas = [PERSONAS[i % len(PERSONAS)] for i in range(n_load)]
            log(f"load: {n_load} consents")
            t = time.monotonic()
            connections = consent_all(proxy.url, auth[0], personas, errors)
            result["consents"] = {"count": n_load, "seconds": round(time.monotonic() - t, 1)}
            sampler.peak.clear()
            sampler.peak_total = 0
            fleet.sample_rss()
            cpu_before = {n: p.total_cpu_s for n, p in fleet.procs.items()}
            cpu_before["postgres"] = postgres_cpu_seconds(pg)
            log(f"load: {n_load} exports requested at once")
            done = threading.Event()
            chaos: Chaos | None = None
            chaos_thread: threading.Thread | None = None
            if args.chaos:
                chaos = Chaos(
                    fleet, pg, sandbox_url, args.latency_ms, workers, apis, done, max_s=args.timeout
                )
                chaos_thread = threading.Thread(target=chaos.run, daemon=True)
            t = time.monotonic()
            tasks = start_exports(proxy.url, auth, connections, errors)
            result["export_requests_s"] = round(time.monotonic() - t, 2)
            if chaos_thread is not None:
                chaos_thread.start()
            rows = wait_for(pg, fleet, tasks, args.timeout, poller)
            done.set()
            if chaos_thread is not None and chaos is not None:
                chaos_thread.join(args.timeout)
                rows = wait_for(pg, fleet, tasks, 120, poller)  # kills after the end
                result["chaos"] = {
                    "worker_kills": chaos.worker_kills,
                    "backends_terminated": chaos.swept,
                    "api_killed": chaos.api_killed,
                    "sandbox_429_bursts": chaos.bursts,
                    "log": chaos.events,
                }
            result["load"] = figures(rows)
            fleet.sample_rss()
            cpu = {n: p.total_cpu_s - cpu_before.get(n, 0.0) for n, p in fleet.procs.items()}
            cpu["postgres"] = postgres_cpu_seconds(pg) - cpu_before["postgres"]
            result["load"]["cpu_s"] = {n: round(v, 1) for n, v in sorted(cpu.items())}
            platform_cpu = sum(v for n, v in cpu.items() if n != "sandbox")  # not the sandbox's
            result["load"]["cpu_s_per_export"] = round(platform_cpu / len(tasks), 2)
            result["load"]["webhooks"] = webhook_figures(
                pg, receiver, tasks, 90 if args.chaos else 30
            )
            result["load"]["db_connections_peak"] = dict(sampler.peak)
            result["load"]["db_connections_peak_total"] = sampler.peak_total
            result["load_average_at_end"] = load_average()

            # Checks.
            checks: dict[str, Any] = {}
            pending = [t for t, r in rows.items() if r["status"] == "pending"]
            unexplained = [
                t for t, r in rows.items() if r["status"] == "failed" and not r["failure_reason"]
            ]
            checks["none_pending"] = not pending and len(rows) == len(tasks)
            checks["failed_have_reasons"] = not unexplained
            mismatched: list[str] = []
            with httpx.Client(timeout=120, auth=auth) as client:
                for persona, task in zip(personas, tasks, strict=True):
                    row = rows.get(task)
                    if not row or row["status"] != "success":
                        continue
                    expected = reference.get(persona)
                    got = (
                        sha256_of_download(client, proxy.url, task, row["file_id"])
                        if args.chaos
                        else row["sha256"]
                    )
                    if expected is None or got != expected or got != row["sha256"]:
                        mismatched.append(f"{persona[0]}/{persona[1]} {task}")
            checks["identical_content"] = not mismatched and not baseline_differs
            checks["baseline_exports_differ"] = baseline_differs
            checks["identical_content_mismatches"] = mismatched[:10]
            checks["every_event_delivered"] = not result["load"]["webhooks"]["missing"]
            checks["signatures_verified"] = result["load"]["webhooks"]["unverified"] == 0
            stalled = stalled_jobs(pg, STALLED_AFTER_S)
            checks["nothing_stalled"] = not stalled
            checks["stalled_jobs"] = [list(map(str, s)) for s in stalled[:10]]
            result["checks"] = checks
            result["failed_exports"] = dict(
                Counter(str(r["failure_reason"]) for r in rows.values() if r["status"] == "failed")
            )
            result["pending_exports"] = len(pending)
            fleet.stop_all()
            result["peak_rss_mib"] = {
                name: round(proc.peak_rss_kib / 1024, 1)
                for name, proc in sorted(fleet.procs.items())
            }
            result["restarts"] = {n: p.starts - 1 for n, p in fleet.procs.items() if p.starts > 1}
            result["errors"] = {
                "http": dict(errors.http),
                "proxy_refused_connects": proxy.refused,
                "tracebacks": {
                    name: dict(Counter(lines)) for name, lines in fleet.tracebacks().items()
                },
            }
            result["ok"] = all(v for k, v in checks.items() if isinstance(v, bool))
            if not result["ok"]:
                result["queue_at_end"] = [
                    list(map(str, row))
                    for row in pg.admin(
                        "SELECT task_name, status, worker_id, count(*), max(attempts) "
                        "FROM procrastinate_jobs GROUP BY 1, 2, 3 ORDER BY 1, 2"
                    )
                ]
                result["workers_at_end"] = [
                    list(map(str, row))
                    for row in pg.admin(
                        "SELECT id, now() - last_heartbeat FROM procrastinate_workers ORDER BY id"
                    )
                ]
            if not args.keep:
                return result
            result["kept"] = str(root)
            return result
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def show(result: dict[str, Any]) -> None:
    base, load = result.get("baseline", {}), result.get("load", {})
    print(
        f"fleet bench ({result['mode']}): {result['processes']['api']} API behind a proxy, "
        f"{result['processes']['worker']} workers x {result['worker_concurrency']}, sandbox "
        f"+{result['sandbox_latency_ms']} ms; load average {result['load_average_at_start']} "
        f"at start, {result.get('load_average_at_end')} at end"
    )
    print(f"{'':28}{'fleet':>14}{'baseline (1 worker)':>22}")
    rows = [
        ("exports", "exports", "exports"),
        ("succeeded", "succeeded", "succeeded"),
        ("exports/min", "exports_per_min", "exports_per_min"),
        ("wall s (first request-last)", "wall_s", "wall_s"),
        ("duration p50 s", "duration_p50_s", "duration_p50_s"),
        ("duration p99 s", "duration_p99_s", "duration_p99_s"),
        ("queue wait p50 s", "queue_wait_p50_s", "queue_wait_p50_s"),
        ("queue wait p99 s", "queue_wait_p99_s", "queue_wait_p99_s"),
        ("most runs of one export", "runs_max", "runs_max"),
    ]
    for label, key, bkey in rows:
        print(f"{label:28}{load.get(key)!s:>14}{base.get(bkey)!s:>22}")
    for label, key in (
        ("webhook p50 ms", "export_event_p50_ms"),
        ("webhook p99 ms", "export_event_p99_ms"),
    ):
        print(f"{label:28}{load['webhooks'].get(key)!s:>14}{base['webhooks'].get(key)!s:>22}")
    print(
        f"{'db connections peak (total)':28}{load.get('db_connections_peak_total')!s:>14}"
        f"{base.get('db_connections_peak_total')!s:>22}"
    )
    for name in sorted(
        set(load.get("db_connections_peak", {})) | set(base.get("db_connections_peak", {}))
    ):
        print(
            f"  {name:26}{load['db_connections_peak'].get(name)!s:>14}"
            f"{base['db_connections_peak'].get(name)!s:>22}"
        )
    print(
        f"CPU s during the load: {load['cpu_s']}; APIs + workers + PostgreSQL: "
        f"{load['cpu_s_per_export']} s per export (a killed process counts to its last sample)"
    )
    print("peak RSS MiB: " + ", ".join(f"{k} {v}" for k, v in result["peak_rss_mib"].items()))
    hooks = load["webhooks"]
    print(
        f"webhooks: {hooks['events']} events, {hooks['received']} received, {hooks['duplicates']} "
        f"duplicates, {hooks['unverified']} unverified, {len(hooks['missing'])} missing "
        f"{hooks['missing_types']}"
    )
    print(f"consents: {result['consents']}; export requests took {result['export_requests_s']} s")
    if "chaos" in result:
        chaos = result["chaos"]
        print(
            f"chaos: {chaos['worker_kills']} worker SIGKILLs, {chaos['backends_terminated']} "
            f"backends terminated, {chaos['api_killed']} SIGKILLed, "
            f"{chaos['sandbox_429_bursts']} 429 bursts; restarts {result['restarts']}"
        )
    print(f"failed exports: {result['failed_exports']}; pending: {result['pending_exports']}")
    print(f"errors: {json.dumps(result['errors'])}")
    print(
        "checks: "
        + ", ".join(f"{k}={v}" for k, v in result["checks"].items() if isinstance(v, bool))
    )
    for key in ("identical_content_mismatches", "baseline_exports_differ", "stalled_jobs"):
        if result["checks"][key]:
            print(f"  {key}: {result['checks'][key]}")
    for key in ("queue_at_end", "workers_at_end"):
        if key in result:
            print(f"{key}: {result[key]}")
    print("OK" if result["ok"] else "FAILED")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 exports, under two minutes")
    parser.add_argument("--chaos", action="store_true", help="kill and cut things during the load")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--exports", type=int, default=0, help="exports of the load (default 100)")
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs at once per worker")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=0, help="seconds a phase may take")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--log-level", default="WARNING", help="of the fleet's processes")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="EHICONNECT_X=VALUE",
        help="a setting for every process of the fleet (repeatable)",
    )
    args = parser.parse_args()
    args.timeout = args.timeout or (150 if args.quick else 900)
    try:
        result = run(args)
    except FleetError as exc:
        print(f"fleet bench failed: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, default=str))
    else:
        show(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
