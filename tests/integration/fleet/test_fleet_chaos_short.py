"""A small fleet survives a killed worker and a dropped database: the short chaos run for CI.

The test starts its own PostgreSQL server (bench/fleet_lib.py, shared with bench/fleet.py: own
binaries, own TCP port, the fleet's role capped at 80 connections), `rclone serve s3`, the sandbox,
one `ehiconnect serve` and two `ehiconnect worker` processes, each with its own data directory as
if on its own host. (bench/fleet.py --chaos is the long version, with webhooks and 100 exports.)
It exports four small and tiny personas once as the reference, then exports the same personas
again through new consents while a worker is SIGKILLed in the middle of an export's crawl and
every connection of the fleet is terminated (`pg_terminate_backend`). Every export must end in
success with exactly the reference's bytes (downloaded through the API), no job may be left
`doing`, and the killed run must have been resumed by the surviving worker. Recovery is the
platform's own, with its default settings (stalled after 10 s, checked every 5 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from bench.fleet_lib import (
    ORIGIN,
    SLUGS,
    Fleet,
    Postgres,
    base_env,
    connect_patient,
    export_rows,
    running_postgres,
    running_s3,
    set_faults,
    sha256_of_download,
    stalled_jobs,
)

from ehiconnect.testing.servers import free_port
from ehiconnect.vocabulary import ExportPhase, ExportStatus

PERSONAS = [("harbor", "tina"), ("cedar", "theo"), ("summit", "tess"), ("harbor", "amy")]
CONCURRENCY = 2
DEADLINE_S = 75


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Fleet, Postgres, dict[str, Any]]]:
    with running_postgres() as pg, running_s3(tmp_path / "s3") as s3_url:
        api_port, sandbox_port = free_port(), free_port()
        api_url, sandbox_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sandbox_port}"
        env = base_env(
            database_url=pg.url, s3_url=s3_url, sandbox_url=sandbox_url, public_url=api_url
        )
        env["EHICONNECT_JOBS__CONCURRENCY"] = str(CONCURRENCY)
        fleet = Fleet(root=tmp_path, env=env)
        try:
            # Processes start while the CLI creates the organization; each migrates at start
            # under the same advisory lock, as a fleet's simultaneous starts do.
            fleet.start("sandbox", "sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port))
            fleet.start("api", "serve", "--host", "127.0.0.1", "--port", str(api_port))
            known = _registered_workers(pg)
            fleet.start("worker-1", "worker", "--name", "worker-1")
            org = json.loads(
                fleet.cli("orgs", "create", "--name", "CI", "--origin", ORIGIN, "--json")
            )
            worker_ids = {"worker-1": _wait_registered(fleet, pg, "worker-1", known)}
            known = _registered_workers(pg)
            fleet.start("worker-2", "worker", "--name", "worker-2")
            worker_ids["worker-2"] = _wait_registered(fleet, pg, "worker-2", known)
            fleet.wait_http("sandbox", sandbox_url + "/")
            fleet.wait_http("api", api_url + "/healthz")
            yield (
                fleet,
                pg,
                {
                    "api": api_url,
                    "sandbox": sandbox_url,
                    "auth": (org["test"]["public_id"], org["test"]["private_key"]),
                    "worker_ids": worker_ids,
                },
            )
        finally:
            fleet.stop_all()


def _export_all(api: str, auth: tuple[str, str], connections: list[str]) -> list[str]:
    tasks = []
    with httpx.Client(auth=auth, timeout=30) as client:
        for connection_id in connections:
            answer = client.post(
                f"{api}/v1/bridge/fhir/ehi-export", json={"org_connection_id": connection_id}
            )
            assert answer.status_code == 200, answer.text
            tasks.append(answer.json()["data"]["task_id"])
    return tasks


def _wait_ended(pg: Postgres, tasks: list[str], deadline: float) -> dict[str, dict[str, Any]]:
    while True:
        rows = {t: r for t, r in export_rows(pg).items() if t in tasks}
        if all(r["status"] != "pending" for r in rows.values()) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


# The phases before packaging.
_CRAWLING = [ExportPhase.DISCOVER, ExportPhase.PATIENT, ExportPhase.RESOURCES, ExportPhase.HYDRATE]


def _exports_being_crawled(pg: Postgres, worker_ids: dict[str, int]) -> set[tuple[str, str]]:
    """(worker name, task id) of every export whose job is running and still crawling.

    Only these are worth killing: a job past its crawl may have published already (the task is
    a success while procrastinate still shows the job `doing`), and then nothing is resumed.
    """
    rows = pg.admin(
        "SELECT j.worker_id, t.task_id FROM procrastinate_jobs j "
        "JOIN export_tasks t ON t.task_id = j.args->>'task_id' "
        "WHERE j.status = 'doing' AND j.task_name = 'exports:run_export' "
        "AND t.status = %s AND t.phase = ANY(%s)",
        (str(ExportStatus.PENDING), [str(phase) for phase in _CRAWLING]),
    )
    names = {wid: name for name, wid in worker_ids.items()}
    return {(names[row[0]], row[1]) for row in rows if row[0] in names}


def _registered_workers(pg: Postgres) -> set[int]:
    try:
        return {int(row[0]) for row in pg.admin("SELECT id FROM procrastinate_workers")}
    except psycopg.errors.UndefinedTable:  # not migrated yet
        return set()


def _wait_registered(fleet: Fleet, pg: Postgres, name: str, known: set[int]) -> int:
    """procrastinate's id for the worker just started (the row it registers once ready)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = _registered_workers(pg) - known
        if new:
            return new.pop()
        assert fleet.procs[name].popen.poll() is None, fleet.log_tail(name)
        time.sleep(0.1)
    raise AssertionError(f"{name} did not register within 60 s")


def test_exports_survive_a_killed_worker_and_a_backend_sweep(
    fleet: tuple[Fleet, Postgres, dict[str, Any]],
) -> None:
    processes, pg, urls = fleet
    api, auth = urls["api"], urls["auth"]

    reference_connections = [connect_patient(api, auth[0], *p) for p in PERSONAS]
    reference_tasks = _export_all(api, auth, reference_connections)
    reference = _wait_ended(pg, reference_tasks, time.monotonic() + DEADLINE_S)
    assert [reference[t]["status"] for t in reference_tasks] == ["success"] * len(PERSONAS)

    for slug in SLUGS:  # long enough crawls to be cut in the middle
        set_faults(urls["sandbox"], slug, {"latency_ms": 300})
    connections = [connect_patient(api, auth[0], *p) for p in PERSONAS]
    tasks = _export_all(api, auth, connections)
    worker_ids: dict[str, int] = urls["worker_ids"]
    deadline = time.monotonic() + DEADLINE_S
    victim: tuple[str, str] | None = None
    while victim is None and time.monotonic() < deadline:
        crawled = _exports_being_crawled(pg, worker_ids)
        if crawled:
            time.sleep(0.3)  # into the crawl, and still in it
            victim = next(iter(crawled & _exports_being_crawled(pg, worker_ids)), None)
        time.sleep(0.1)
    assert victim is not None, "no export was seen crawling"
    victim_worker, victim_task = victim
    processes.kill(victim_worker)
    assert pg.terminate_fleet_backends() > 0
    for slug in SLUGS:
        set_faults(urls["sandbox"], slug, {"latency_ms": 20})

    rows = _wait_ended(pg, tasks, deadline)
    assert {t: rows[t]["status"] for t in tasks} == dict.fromkeys(tasks, "success")
    assert rows[victim_task]["runs"] >= 2  # the killed run was resumed elsewhere
    with httpx.Client(auth=auth, timeout=60) as client:
        for task, ref in zip(tasks, reference_tasks, strict=True):
            got = sha256_of_download(client, api, task, rows[task]["file_id"])
            assert got == reference[ref]["sha256"], f"export {task} differs from its reference"
    assert stalled_jobs(pg, 10) == []
