"""`ehiconnect export ORG_CONNECTION_ID [--wait]`: start an export from the command line."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ehiconnect.cli.common import console, err_console, load_settings, print_json
from ehiconnect.db.database import Database
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import ApiError
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.service import request_export
from ehiconnect.exports.states import status_view
from ehiconnect.ids import as_api_mode
from ehiconnect.orgs.credentials import Principal
from ehiconnect.runtime import Runtime
from ehiconnect.vocabulary import ExportPhase, ExportStatus


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    org_connection_id: Annotated[str, typer.Argument(help="The connection to export")],
    wait: Annotated[bool, typer.Option(help="Follow progress until the export ends")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    poll_seconds: Annotated[float, typer.Option(help="Seconds between progress checks")] = 1.0,
) -> None:
    """Start (or find) the export of a connection; with --wait, show progress and a summary.

    Runs as the operator on the connection's own organization and mode. A worker
    (`ehiconnect worker`, or `ehiconnect up`) must be running to make progress.
    """
    settings = load_settings()

    async def work() -> dict[str, object]:
        async with Runtime.open(settings) as runtime:
            async with runtime.database.transaction() as session:
                connection = await session.get(OrgConnection, org_connection_id)
                if connection is None:
                    raise typer.BadParameter(f"no connection has id {org_connection_id}")
                principal = Principal(
                    org_id=connection.org_id,
                    api_mode=as_api_mode(connection.api_mode),
                    public_id="cli",
                    key_id=0,
                )
            task = await request_export(runtime.exports, principal, org_connection_id)
            if not wait:
                return status_view(task)
            return await _follow(runtime.database, task.task_id, poll_seconds, show=not json)

    try:
        view = asyncio.run(work())
    except ApiError as exc:
        err_console.print(f"[red]error:[/red] {exc.description}")
        raise typer.Exit(1) from None
    if json:
        print_json(view)
    else:
        _summary(view)
    if view["status"] == ExportStatus.FAILED:
        raise typer.Exit(2)


async def _follow(
    database: Database, task_id: str, poll: float, *, show: bool
) -> dict[str, object]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
        transient=True,
    ) as progress:
        bar = progress.add_task(ExportPhase.QUEUED, total=None)
        while True:
            async with database.transaction() as session:
                task = await session.get(ExportTask, task_id)
                if task is None:
                    raise typer.BadParameter(f"export {task_id} disappeared")
                view = status_view(task)
            done = task.progress
            progress.update(
                bar,
                description=(
                    f"{task.phase}: {done.get('resources', 0)} resources, "
                    f"{done.get('attachment_bytes', 0) / 1e6:.1f} MB of attachments"
                ),
            )
            if task.status != ExportStatus.PENDING:
                return view
            await asyncio.sleep(poll)


def _summary(view: dict[str, object]) -> None:
    console.print(f"export [bold]{view['task_id']}[/bold]: {view['status']}")
    if view["status"] == ExportStatus.FAILED:
        console.print(f"[red]{view.get('failure_reason')}[/red]: {view.get('failure_description')}")
    stats = view.get("stats")
    if isinstance(stats, dict):
        table = Table("resource type", "count")
        for kind, count in sorted(stats.get("total_by_resource_type", {}).items()):
            table.add_row(kind, str(count))
        table.add_row("[bold]total[/bold]", str(stats.get("total_resources", 0)))
        console.print(table)
    files = view.get("files")
    if isinstance(files, list):
        for file in files:
            console.print(f"file {file['file_id']}: {file['size']} bytes, sha256 {file['sha256']}")
