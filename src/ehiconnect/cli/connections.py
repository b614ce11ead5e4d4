"""`ehiconnect connections list`: the connections patients have made, for operators."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from ehiconnect.cli.common import console, listing, load_settings, print_json, with_runtime
from ehiconnect.connections.service import connection_view
from ehiconnect.db.models import OrgConnection
from ehiconnect.runtime import Runtime

connections_app = typer.Typer(help="Inspect patients' connections.")


def register(app: typer.Typer) -> None:
    app.add_typer(connections_app, name="connections")


@connections_app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="Only this org_id")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List connections, newest first (no tokens, no patient data)."""
    settings = load_settings()

    async def work(runtime: Runtime) -> list[dict[str, object]]:
        async with runtime.database.transaction() as session:
            query = select(OrgConnection).order_by(OrgConnection.created_at.desc()).limit(500)
            if org:
                query = query.where(OrgConnection.org_id == org)
            return [
                {**connection_view(c), "created_at": c.created_at.isoformat()}
                for c in await session.scalars(query)
            ]

    rows = with_runtime(settings, work)
    if json:
        print_json(rows)
        return
    table = listing("org_connection_id", "mode", "status", "platform", "created")
    for row in rows:
        table.add_row(
            str(row["org_connection_id"]),
            str(row["api_mode"]),
            str(row["status"]),
            str(row["platform_type"]),
            str(row["created_at"])[:19],
        )
    console.print(table)
