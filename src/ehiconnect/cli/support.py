"""`ehiconnect support ...`: what patients asked for from the widget ("I can't find my health
system"), newest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ehiconnect.cli.common import console, listing, load_settings, print_json, with_runtime
from ehiconnect.ids import API_MODES
from ehiconnect.runtime import Runtime
from ehiconnect.scope import OrgScope
from ehiconnect.support.service import (
    list_every_support_request,
    list_support_requests,
    support_request_view,
)

support_app = typer.Typer(help="Support requests patients sent from the widget.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]


def register(app: typer.Typer) -> None:
    app.add_typer(support_app, name="support")


@support_app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="Only this organization (org_id)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first")] = 50,
    json: JsonFlag = False,
) -> None:
    """List support requests, newest first."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.transaction() as session:
            if org is None:
                found = await list_every_support_request(session, limit=limit)
            else:  # the organization's requests in both modes
                scopes = [OrgScope(org_id=org, api_mode=mode) for mode in API_MODES]
                found = await list_support_requests(session, scopes, limit=limit)
            return [support_request_view(request) for request in found]

    requests = with_runtime(load_settings(), work)
    if json:
        print_json(requests)
        return
    table = listing(
        "created", "org_id", "mode", "from", "subject", "body", title="support requests"
    )
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
