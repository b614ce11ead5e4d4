"""`ehiconnect tracker serve|worker|migrate|status|failures|console`: the customer-side service,
its job worker, its tables, its reports and the accounts of its console (/console on `serve`).

The tracker's settings are its own (`TrackerSettings.load()`: `EHICONNECT_TRACKER__…`, `[tracker]`);
from the platform's it takes only where its data lives (`data_dir`, the database URL, the
embedded PostgreSQL) and the log format. Its tables are migrated by its own history.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from rich.table import Table

from ehiconnect.cli.common import console, err_console, listing, load_settings, print_json
from ehiconnect.clock import SystemClock
from ehiconnect.consolekit import accounts
from ehiconnect.consolekit.models import ROLE_OPERATOR
from ehiconnect.errors import ApiError
from ehiconnect.runtime import database_url
from ehiconnect.settings import Settings

# Only the tracker's settings here: each command imports the rest itself, so that `ehiconnect
# worker`, which loads every command group, does not load the tracker's modules (~80 MiB).
from ehiconnect.tracker import TrackerSettings

if TYPE_CHECKING:
    from ehiconnect.tracker import TrackerRuntime

tracker_app = typer.Typer(help="The tracker: your backend's side of consent and collection.")
console_app = typer.Typer(help="Accounts of the tracker's console (/console on tracker serve).")
tracker_app.add_typer(console_app, name="console")
MAX_STDIN_PASSWORD = 4096


def register(app: typer.Typer) -> None:
    """Add the `tracker` command group to the main CLI."""
    app.add_typer(tracker_app, name="tracker")


@tracker_app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default: tracker.host)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: tracker.port, 8600)")] = None,
    worker: Annotated[
        bool, typer.Option(help="Also run the tracker's jobs in this process")
    ] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve the tracker's Prometheus /metrics on this port (default: none)"),
    ] = None,
) -> None:
    """Receive widget events and webhooks, and (with --worker) run the tracker's jobs."""
    from ehiconnect.tracker import build_tracker_app, open_tracker, upgrade_tracker_database

    settings = load_settings()
    section = TrackerSettings.load()
    if metrics_port is not None:
        section.metrics_port = metrics_port
    url = database_url(settings)
    upgrade_tracker_database(url)  # before listening: a schema problem stops the start
    app = build_tracker_app(lambda: open_tracker(section, url, settings.data_dir), section)
    config = uvicorn.Config(
        app,
        host=host or section.host,
        port=port or section.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the tracker does not act on client addresses
    )
    console.print(f"tracker listening on http://{config.host}:{config.port}")
    asyncio.run(_serve(uvicorn.Server(config), section, url, settings, worker))


async def _serve(
    server: uvicorn.Server, section: TrackerSettings, url: str, settings: Settings, worker: bool
) -> None:
    from ehiconnect.tracker import metrics_exposed, open_tracker

    if not worker and section.metrics_port is None:
        await server.serve()
        return
    async with (
        open_tracker(section, url, settings.data_dir) as tracker,
        metrics_exposed(tracker.database, host=section.host, port=section.metrics_port),
    ):
        if not worker:
            await server.serve()
            return
        jobs = asyncio.create_task(
            _work(tracker, settings.jobs.concurrency, install_signal_handlers=False)
        )
        try:
            await server.serve()
        finally:
            jobs.cancel()
            await asyncio.gather(jobs, return_exceptions=True)


@tracker_app.command("migrate")
def migrate() -> None:
    """Apply the tracker's pending migrations (every tracker process also does this on start)."""
    from ehiconnect.tracker import upgrade_tracker_database

    revision = upgrade_tracker_database(database_url(load_settings()))
    console.print(f"tracker tables at revision {revision}")


@tracker_app.command("worker")
def tracker_worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (default: jobs.concurrency)")
    ] = None,
) -> None:
    """Run the tracker's jobs only, beside `tracker serve --no-worker` (the platform's
    `ehiconnect worker` does not run them)."""
    from ehiconnect.tracker import open_tracker

    settings = load_settings()
    section = TrackerSettings.load()
    url = database_url(settings)

    async def run() -> None:
        async with open_tracker(section, url, settings.data_dir) as tracker:
            await _work(tracker, concurrency or settings.jobs.concurrency)

    console.print("tracker worker running (queue tracker)")
    asyncio.run(run())


async def _work(
    tracker: TrackerRuntime, concurrency: int, *, install_signal_handlers: bool = True
) -> None:
    from ehiconnect.tracker import QUEUE

    await tracker.jobs.run_worker_async(
        queues=[QUEUE],
        concurrency=concurrency,
        additional_context=tracker.job_context(),
        install_signal_handlers=install_signal_handlers,
        fetch_job_polling_interval=tracker.settings.worker_poll_seconds,
    )


def _with_session(settings: Settings, query: Any) -> dict[str, Any]:
    from ehiconnect.tracker import upgrade_tracker_database

    url = database_url(settings)
    upgrade_tracker_database(url)

    async def run() -> dict[str, Any]:
        from ehiconnect.db.database import Database
        from ehiconnect.db.pools import ProcessRole

        database = Database(
            url, pool_size=1, connect_args={"application_name": ProcessRole.CLI.application_name}
        )
        try:
            async with database.transaction() as session:
                result: dict[str, Any] = await query(session)
                return result
        finally:
            await database.close()

    return asyncio.run(run())


@tracker_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Jobs by state, flagged webhooks, and the most recent jobs."""
    from ehiconnect.tracker import status_report

    data = _with_session(load_settings(), status_report)
    if as_json:
        print_json(data)
        return
    states = Table(title="Tracker jobs by state")
    states.add_column("State")
    states.add_column("Jobs", justify="right")
    for state, n in data["jobs_by_state"].items():
        states.add_row(state, str(n))
    console.print(states)
    console.print(
        f"consent log entries: {data['consent_log_entries']}   "
        f"flagged webhooks: {data['flagged_webhooks']} {data['flags'] or ''}"
    )
    recent = Table(title="Recent jobs")
    for column in ("Job", "Health system", "State", "Attempts", "Updated"):
        recent.add_column(column, no_wrap=column != "Attempts")
    for job in data["recent_jobs"]:
        recent.add_row(
            job["job_id"],
            job["health_system"] or "-",
            job["state"],
            ", ".join(f"{k}={v}" for k, v in job["attempts"].items()) or "-",
            job["updated_at"],
        )
    console.print(recent)


@tracker_app.command("failures")
def failures(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Failed jobs grouped by reason, health system and step."""
    from ehiconnect.tracker import failures_report

    data = _with_session(load_settings(), failures_report)
    if as_json:
        print_json(data)
        return
    if not data["total"]:
        console.print("no failed jobs")
        return
    console.print(failures_table(data))


def failures_table(data: dict[str, Any]) -> Table:
    """The failure report as a table. The identifiers (reason, health system, step, job ids) fold
    onto more lines rather than end in an ellipsis: in an 80-column terminal an operator still
    reads and copies them whole."""
    table = listing("Reason", "Health system", "Step", title=f"Failed jobs: {data['total']}")
    table.add_column("Jobs", justify="right")
    table.add_column("What happened")
    table.add_column("Examples", overflow="fold")
    for group in data["groups"]:
        table.add_row(
            group["reason"],
            group["health_system"],
            group["step"],
            str(group["count"]),
            group["description"][:120],
            "\n".join(group["job_ids"]),
        )
    return table


def _accounts_work(query: Any) -> dict[str, Any]:
    """Run an account change; a refusal (short password, duplicate, unknown email) is a clear
    message and exit code 1."""
    try:
        return _with_session(load_settings(), query)
    except ApiError as exc:
        err_console.print(f"[red]error:[/red] {exc.description}")
        raise typer.Exit(1) from None


@console_app.command("add-user")
def console_add_user(
    email: Annotated[str, typer.Argument(help="The person's email address (their login)")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create an account of the tracker's console (its own accounts, not the platform's)."""
    from ehiconnect.tracker import CONSOLE_REALM

    if password_stdin:
        password = sys.stdin.readline(MAX_STDIN_PASSWORD + 2).rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def work(session: Any) -> dict[str, Any]:
        user = await accounts.add_user(
            session,
            SystemClock(),
            realm=CONSOLE_REALM,
            email=email,
            password=password,
            role=ROLE_OPERATOR,
            org_id=None,
        )
        return {"email": user.email}

    created = _accounts_work(work)
    console.print(
        f"tracker console account {created['email']} created; sign in at /console/login "
        "on tracker serve"
    )


@console_app.command("unlock")
def console_unlock(email: Annotated[str, typer.Argument(help="The account's email")]) -> None:
    """Lift a lockout after too many wrong passwords."""
    from ehiconnect.tracker import CONSOLE_REALM

    async def work(session: Any) -> dict[str, Any]:
        await accounts.unlock(session, SystemClock(), realm=CONSOLE_REALM, email=email)
        return {}

    _accounts_work(work)
    console.print(f"tracker console account {email.strip()} unlocked")


@console_app.command("users")
def console_users(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the tracker console's accounts."""
    from ehiconnect.tracker import CONSOLE_REALM

    async def work(session: Any) -> dict[str, Any]:
        return {
            "users": [
                {
                    "email": user.email,
                    "locked_until": user.locked_until.isoformat() if user.locked_until else None,
                    "last_login_at": (
                        user.last_login_at.isoformat() if user.last_login_at else None
                    ),
                }
                for user in await accounts.list_users(session, CONSOLE_REALM)
            ]
        }

    rows = _accounts_work(work)["users"]
    if as_json:
        print_json(rows)
        return
    table = listing("email", "locked until", "last login")
    for row in rows:
        table.add_row(*(str(row[key] or "") for key in row))
    console.print(table)
