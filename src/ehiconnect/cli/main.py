"""`ehiconnect`: one command line for the platform, its worker, the sandbox and administration."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
import uvicorn

from ehiconnect import __version__
from ehiconnect.cli.common import console, load_settings
from ehiconnect.cli.orgs import keys_app, orgs_app
from ehiconnect.db.embedded import stop_embedded_postgres
from ehiconnect.db.migrate import upgrade_database
from ehiconnect.runtime import database_url
from ehiconnect.settings import Settings
from ehiconnect.tracker.settings import TrackerSettings

app = typer.Typer(
    help="ehiconnect: patient-consented health-record retrieval over SMART on FHIR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: migrations and the embedded server.")
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

# Commands contributed by feature packages: (module, function `register(app)`), loaded if present.
_PLUGINS = (
    "ehiconnect.cli.sandbox",
    "ehiconnect.cli.webhooks",
    "ehiconnect.cli.export",
    "ehiconnect.cli.connections",
    "ehiconnect.cli.catalog",
    "ehiconnect.cli.vault",
    "ehiconnect.cli.tracker",
    "ehiconnect.cli.demo",
    "ehiconnect.cli.console",
    "ehiconnect.cli.support",
)
for _module in _PLUGINS:
    try:
        importlib.import_module(_module).register(app)
    except ModuleNotFoundError as missing:
        if missing.name != _module:  # a plug-in that exists but is broken must say so
            raise


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: settings)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 8400)")] = None,
) -> None:
    """Run the platform API."""
    settings = load_settings()
    _serve(settings, host, port)


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    from ehiconnect.api.app import create_app

    settings.api.host = host or settings.api.host
    settings.api.port = port or settings.api.port
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # forwarded headers are believed only from api.trusted_proxies
        # SIGTERM: stop accepting, finish in-flight requests for at most this long.
        timeout_graceful_shutdown=settings.api.shutdown_grace_seconds,
    )


@app.command()
def worker(
    name: Annotated[str, typer.Option(help="Worker name shown in job logs")] = "worker",
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's Prometheus /metrics on this port (default: none)"),
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="Interface for --metrics-port (default: 127.0.0.1)")
    ] = None,
) -> None:
    """Run queued jobs (exports, webhook deliveries, maintenance) until stopped."""
    from ehiconnect.jobs.worker import run_worker

    settings = load_settings()
    if concurrency:
        settings.jobs.concurrency = concurrency
    if metrics_port is not None:
        settings.jobs.metrics_port = metrics_port
    if metrics_host:
        settings.jobs.metrics_host = metrics_host
    asyncio.run(run_worker(settings, name=name))


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Interface for the API")] = None,
    port: Annotated[int | None, typer.Option(help="Port for the API")] = None,
) -> None:
    """Run the whole system on embedded defaults: database, API, worker and sandbox."""
    settings = load_settings()
    url = database_url(settings)  # starts the embedded server before the children race for it
    upgrade_database(url)
    console.print(f"[bold]ehiconnect {__version__}[/bold] data in {settings.data_dir.resolve()}")
    # The worker builds download links from the API's address: give it the one chosen here
    # (processes of one database must agree on it; see docs/deploy.md).
    if host:
        os.environ["EHICONNECT_API__HOST"] = host
    if port:
        os.environ["EHICONNECT_API__PORT"] = str(port)
    children = [["worker"]]
    if settings.sandbox.enabled and "sandbox" in _registered_commands():
        children.append(["sandbox"])
    if TrackerSettings.load().public_id:  # the tracker's own settings, as `tracker serve` reads
        children.append(["tracker", "serve"])
    else:
        console.print(
            "tracker not started: configure EHICONNECT_TRACKER__PUBLIC_ID, __PRIVATE_KEY and "
            "__WEBHOOK_SECRETS (see docs/tracker.md; `ehiconnect demo` prints a working set), "
            "or run `ehiconnect tracker serve` later"
        )
    with _child_processes(children):
        try:
            _serve(settings, host, port)
        finally:
            if settings.database_url is None:
                stop_embedded_postgres(settings.data_dir)


def _registered_commands() -> set[str]:
    return {command.name or "" for command in app.registered_commands}


@contextlib.contextmanager
def _child_processes(commands: list[list[str]]) -> Iterator[None]:
    processes = [
        subprocess.Popen([sys.executable, "-m", "ehiconnect", *command], env=os.environ.copy())  # noqa: S603 (our own entry point)
        for command in commands
    ]
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@db_app.command("migrate")
def migrate() -> None:
    """Apply pending schema migrations (every process also does this on start)."""
    settings = load_settings()
    revision = upgrade_database(database_url(settings))
    console.print(f"database at revision {revision}")


@db_app.command("url")
def url() -> None:
    """Print the database URL in use (starts the embedded server when none is configured)."""
    settings = load_settings()
    sys.stdout.write(database_url(settings) + "\n")


@db_app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL server of the data directory."""
    settings = load_settings()
    stopped = stop_embedded_postgres(settings.data_dir)
    console.print("stopped" if stopped else "no embedded server was running")


def main() -> None:
    app()
