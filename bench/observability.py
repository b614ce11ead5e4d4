"""Benchmark: what metrics and lifecycle logs cost, on vs off in the same run (#14; goal < 3 %).

Starts the sandbox and the platform API as subprocesses on loopback (embedded PostgreSQL in a
temporary data directory, removed at the end) and runs the worker's side in this process, where
the switch is: "on" is production's setup (every metric recorded, lifecycle lines written as JSON
through the redacting filter to a file), "off" is `metrics.set_enabled(False)` with the lifecycle
logger above INFO. Rounds alternate on/off (ABBA order) so drift on a shared machine hits both.

1. Exports: per round, one export of the persona (default amy at harbor: ~500 resources, ~30 MB
   of attachments) run by the real job (`exports:run_export`); wall time and this process's CPU
   time (the worker's) per export.
2. Webhooks: per round, N events (default 1,000) emitted through the outbox and delivered by the
   real Deliverer to a loopback receiver; wall and CPU time per round.

Prints the median of each side and the overhead (on / off - 1).

    .venv/bin/python bench/observability.py [--rounds 6] [--persona amy] [--events 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ehiconnect import metrics
from ehiconnect.logging import JsonFormatter, RedactingFilter
from ehiconnect.orgs.service import create_org
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import free_port, serve_in_thread
from ehiconnect.webhooks import endpoints, outbox
from ehiconnect.webhooks.delivery import Deliverer
from ehiconnect.webhooks.payloads import WebhookTest
from export import ORIGIN, Stack, connect

SLUG_OF = {"amy": "harbor", "tina": "harbor", "beth": "cedar", "theo": "cedar"}


@contextlib.contextmanager
def sandbox_and_api() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="ehiconnect-bench-obs-"))
    sandbox_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHICONNECT_")}
    env.update(
        {
            "EHICONNECT_DATA_DIR": str(root / "data"),
            "EHICONNECT_API__PORT": str(api_port),
            "EHICONNECT_SANDBOX__BASE_URL": f"http://127.0.0.1:{sandbox_port}",
            "EHICONNECT_LOG_LEVEL": "WARNING",
        }
    )
    stack = Stack(
        root=root,
        env=env,
        sandbox_url=f"http://127.0.0.1:{sandbox_port}",
        api_url=f"http://127.0.0.1:{api_port}",
    )
    try:
        stack.spawn("sandbox", "sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port))
        stack.cli("db", "migrate")
        org = json.loads(
            stack.cli("orgs", "create", "--name", "Bench", "--origin", ORIGIN, "--json")
        )
        stack.public_id, stack.private_key = org["test"]["public_id"], org["test"]["private_key"]
        stack.spawn("api", "serve")
        stack.wait_until_up("sandbox", stack.sandbox_url + "/")
        stack.wait_until_up("api", stack.api_url + "/healthz")
        yield stack
    finally:
        for process in stack.processes.values():
            process.terminate()
        for process in stack.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        with contextlib.suppress(SystemExit, subprocess.TimeoutExpired):
            stack.cli("db", "stop")
        shutil.rmtree(root, ignore_errors=True)


class Switch:
    """Metrics and lifecycle lines on (production's JSON handler, to a file) or off."""

    def __init__(self, log_path: Path) -> None:
        self.handler = logging.FileHandler(log_path)
        self.handler.addFilter(RedactingFilter())
        self.handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.handlers[:] = [self.handler]
        root.setLevel(logging.INFO)
        for noisy in ("httpx", "httpcore", "procrastinate", "alembic.runtime.migration"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    def set(self, on: bool) -> None:
        metrics.set_enabled(on)
        logging.getLogger("ehiconnect.lifecycle").setLevel(logging.INFO if on else logging.WARNING)


def order(rounds: int) -> list[bool]:
    """ABBA…: on, off, off, on, on, off, …"""
    return [(i % 4) in (0, 3) for i in range(rounds * 2)]


async def export_rounds(
    stack: Stack, runtime: Runtime, switch: Switch, persona: str, rounds: int
) -> tuple[dict[bool, list[tuple[float, float]]], int]:
    """Timings on and off, and the FHIR requests one export sends."""
    slug = SLUG_OF[persona]
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    requests = 0
    connection = await asyncio.to_thread(connect, stack, slug, persona)
    async with httpx.AsyncClient(base_url=stack.api_url, auth=stack.auth, timeout=60) as api:
        for index, on in enumerate([True, *order(rounds)]):  # the first one warms up, unmeasured
            requested = await api.post(
                "/v1/bridge/fhir/ehi-export", json={"org_connection_id": connection}
            )
            task = requested.json()["data"]["task_id"]
            switch.set(on)
            wall, cpu = time.perf_counter(), time.process_time()
            await runtime.jobs.run_worker_async(
                wait=False,
                install_signal_handlers=False,
                additional_context=runtime.job_context(),
            )
            if index:
                results[on].append((time.perf_counter() - wall, time.process_time() - cpu))
            switch.set(True)
            view = (await api.get(f"/v1/bridge/fhir/ehi-export/{task}")).json()["data"]
            requests = int(view["progress"].get("requests") or 0)
            if view["status"] != "success":
                raise SystemExit(f"export ended {view['status']}: {view}")
            # Deleted, so the next request makes a new export instead of answering this one.
            await api.delete(f"/v1/fhir/bulkstatus/{task}")
    return results, requests


async def webhook_rounds(
    runtime: Runtime, switch: Switch, events: int, rounds: int, receiver_url: str
) -> dict[bool, list[tuple[float, float]]]:
    clock = runtime.clock
    async with runtime.database.transaction() as session:
        org = await create_org(session, clock, name="Webhook bench")
        await endpoints.add_endpoint(
            session,
            clock,
            runtime.cipher,
            org_id=org.org_id,
            api_mode="test",
            url=receiver_url,
            event_types=(),
        )
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    async with Deliverer(runtime.database, clock, runtime.settings.webhooks, runtime.cipher) as d:
        for on in order(rounds):
            for start in range(0, events, 100):
                async with runtime.database.transaction() as session:
                    for n in range(start, min(start + 100, events)):
                        await outbox.emit(
                            session,
                            clock=clock,
                            org_id=org.org_id,
                            api_mode="test",
                            event=WebhookTest.model_validate({"n": n}),
                        )
            switch.set(on)
            wall, cpu = time.perf_counter(), time.process_time()
            report = await d.run_until_idle(max_passes=100_000)
            results[on].append((time.perf_counter() - wall, time.process_time() - cpu))
            switch.set(True)
            if report.succeeded != events:
                raise SystemExit(f"delivered {report.succeeded} of {events}")
    return results


def unit_costs(switch: Switch, repeat: int = 20_000) -> dict[str, float]:
    """Microseconds per instrumented call, on: the stable part of the overhead."""
    from ehiconnect.lifecycle import LifecycleEvent, log_event

    switch.set(True)
    started = time.perf_counter()
    for _ in range(repeat):
        metrics.crawl_response("fhir.example.org", 200, None, 6)
    metric_us = (time.perf_counter() - started) / repeat * 1e6
    started = time.perf_counter()
    for _ in range(repeat):
        metrics.webhook_attempt("succeeded", 204, delivered_after_seconds=0.2, event_type="t")
    attempt_us = (time.perf_counter() - started) / repeat * 1e6
    started = time.perf_counter()
    for _ in range(repeat // 10):
        log_event(
            LifecycleEvent.EXPORT_PHASE_CHANGED,
            task_id="0" * 32,
            org_id="org_x",
            org_connection_id="c" * 36,
            api_mode="test",
            phase="resources",
        )
    line_us = (time.perf_counter() - started) / (repeat // 10) * 1e6
    return {
        "metric_call_us": round(metric_us, 2),
        "webhook_attempt_us": round(attempt_us, 2),
        "log_line_us": round(line_us, 1),
    }


def summary(results: dict[bool, list[tuple[float, float]]]) -> dict[str, Any]:
    def median(on: bool, index: int) -> float:
        return statistics.median(sample[index] for sample in results[on])

    on_wall, off_wall = median(True, 0), median(False, 0)
    on_cpu, off_cpu = median(True, 1), median(False, 1)
    return {
        "rounds_each": len(results[True]),
        "wall_s_on": round(on_wall, 3),
        "wall_s_off": round(off_wall, 3),
        "wall_overhead_pct": round((on_wall / off_wall - 1) * 100, 2),
        "cpu_s_on": round(on_cpu, 3),
        "cpu_s_off": round(off_cpu, 3),
        "cpu_overhead_pct": round((on_cpu / off_cpu - 1) * 100, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async def hook(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with sandbox_and_api() as stack, serve_in_thread(receiver) as hooks:
        settings = Settings(
            data_dir=Path(stack.env["EHICONNECT_DATA_DIR"]),
            log_level="INFO",
            log_format="json",
        )
        settings.api.port = int(stack.env["EHICONNECT_API__PORT"])
        settings.sandbox.base_url = stack.sandbox_url
        switch = Switch(stack.root / "lifecycle.log")
        async with Runtime.open(settings) as runtime:
            exports, requests = await export_rounds(
                stack, runtime, switch, args.persona, args.rounds
            )
            webhooks = await webhook_rounds(
                runtime, switch, args.events, args.rounds, f"{hooks.url}/hook"
            )
        lines = sum(1 for _ in (stack.root / "lifecycle.log").open())
        costs = unit_costs(switch)
    export_lines = 7  # started, five phases, succeeded
    export = summary(exports)
    instrumented_ms = (
        requests * costs["metric_call_us"] + export_lines * costs["log_line_us"]
    ) / 1e3
    export["fhir_requests_per_export"] = requests
    export["instrumentation_ms_per_export"] = round(instrumented_ms, 2)
    hooks = summary(webhooks)
    per_round_ms = args.events * costs["webhook_attempt_us"] / 1e3
    hooks["instrumentation_ms_per_round"] = round(per_round_ms, 2)
    hooks["instrumentation_pct_of_cpu"] = round(per_round_ms / 1e3 / hooks["cpu_s_off"] * 100, 3)
    export["instrumentation_pct_of_cpu"] = round(
        instrumented_ms / 1e3 / export["cpu_s_off"] * 100, 3
    )
    return {
        "persona": args.persona,
        "events_per_round": args.events,
        "export": export,
        "webhooks": hooks,
        "log_lines_written_when_on": lines,
        "unit_costs": costs,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds on and rounds off")
    parser.add_argument("--persona", default="amy", choices=sorted(SLUG_OF))
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"persona {result['persona']}, {result['events_per_round']} webhook events per round")
    for part in ("export", "webhooks"):
        s = result[part]
        print(
            f"{part:9} wall on {s['wall_s_on']:.3f} s / off {s['wall_s_off']:.3f} s "
            f"({s['wall_overhead_pct']:+.2f} %), CPU on {s['cpu_s_on']:.3f} s / off "
            f"{s['cpu_s_off']:.3f} s ({s['cpu_overhead_pct']:+.2f} %), "
            f"median of {s['rounds_each']} rounds each"
        )
    print(f"lifecycle lines written: {result['log_lines_written_when_on']}")
    e = result["export"]
    print(
        f"an export sends {e['fhir_requests_per_export']} FHIR requests: its instrumentation "
        f"costs {e['instrumentation_ms_per_export']} ms, {e['instrumentation_pct_of_cpu']} % "
        "of its CPU time"
    )
    h = result["webhooks"]
    print(
        f"a round's {result['events_per_round']} webhook attempts: instrumentation "
        f"{h['instrumentation_ms_per_round']} ms, {h['instrumentation_pct_of_cpu']} % of CPU time"
    )
    costs = result["unit_costs"]
    print(
        f"per call: a request's metrics {costs['metric_call_us']} µs, a webhook attempt's "
        f"{costs['webhook_attempt_us']} µs, "
        f"a lifecycle line {costs['log_line_us']} µs"
    )
    print(f"load average: {result['load_average']}")


if __name__ == "__main__":
    main()
