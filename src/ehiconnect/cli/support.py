"""`ehiconnect support ...`: what patients asked for from the widget ("I can't find my health
system"), newest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ehiconnect.cli.common import console, load_settings, print_json, with_runtime
from ehiconnect.runtime import Runtime
from ehiconnect.support.models import SupportRequest
from ehiconnect.support.service import list_support_requests

support_app = typer.Typer(help="Support requests patients sent from the widget.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]


def register(app: typer.Typer) -> None:
    app.add_typer(support_app, name="support")


def _as_json(request: SupportRequest) -> dict[str, Any]:
    return {
        "id": request.request_id,
        "org_id": request.org_id,
        "api_mode": request.api_mode,
        "email": request.email,
        "name": request.name,
        "subject": request.subject,
        "body": request.body,
        "external_id": request.external_id,
        "event_id": request.event_id,
        "created_at": request.created_at.isoformat(),
    }


@support_app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="Only this organization (org_id)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first")] = 50,
    json: JsonFlag = False,
) -> None:
    """List support requests, newest first."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.transaction() as session:
            found = await list_support_requests(session, org_id=org, limit=limit)
            return [_as_json(request) for request in found]

    requests = with_runtime(load_settings(), work)
    if json:
        print_json(requests)
        return
    table = Table("created", "org_id", "mode", "from", "subject", "body", title="support requests")
    for item in requests:
        body = item["body"] if len(item["body"]) <= 80 else item["body"][:79] + "…"
        table.add_row(
            item["created_at"],
            item["org_id"],
            item["api_mode"],
            f"{item['name']} <{item['email']}>",
            item["subject"],
            body,
        )
    console.print(table)
