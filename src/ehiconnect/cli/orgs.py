"""`ehiconnect orgs ...` and `ehiconnect keys ...`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from ehiconnect.cli.common import console, listing, load_settings, print_json, with_runtime
from ehiconnect.ids import API_MODES, ApiMode, as_api_mode
from ehiconnect.orgs import service
from ehiconnect.runtime import Runtime
from ehiconnect.scope import OrgScope

orgs_app = typer.Typer(help="Create and list organizations (the platform's customers).")
keys_app = typer.Typer(help="Rotate an organization's API keys.")


@orgs_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="The organization's display name")],
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="A redirect URI the widget may return to (repeatable)")
    ] = None,
    origin: Annotated[
        list[str] | None, typer.Option(help="An origin allowed to embed the widget (repeatable)")
    ] = None,
    logo_url: Annotated[str | None, typer.Option(help="Logo shown in the widget")] = None,
    privacy_policy_url: Annotated[str | None, typer.Option(help="Privacy policy link")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create an organization with test and live key pairs. The private keys are shown only once."""
    settings = load_settings()

    async def work(runtime: Runtime) -> service.CreatedOrg:
        async with runtime.database.transaction() as session:
            return await service.create_org(
                session,
                runtime.clock,
                name=name,
                redirect_uris=redirect_uri or [],
                origins=origin or [],
                logo_url=logo_url,
                privacy_policy_url=privacy_policy_url,
            )

    created = with_runtime(settings, work)
    if json:
        print_json(created.as_json())
        return
    console.print(f"Organization [bold]{created.name}[/bold]  org_id={created.org_id}")
    for mode, pair in created.keys.items():
        console.print(f"  {mode}: public_id={pair.public_id}")
        console.print(f"  {mode}: private_key={pair.private_key}")
    console.print("[yellow]Store the private keys now: they are not shown again.[/yellow]")


@orgs_app.command("list")
def list_(json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List organizations with their public ids."""
    settings = load_settings()

    async def work(runtime: Runtime) -> list[dict[str, object]]:
        async with runtime.database.transaction() as session:
            rows: list[dict[str, object]] = []
            for org in await service.list_orgs(session):
                ids = await service.public_ids(session, org.org_id)
                rows.append(
                    {
                        "org_id": org.org_id,
                        "name": org.name,
                        "public_ids": ids,
                        "redirect_uris": org.redirect_uris,
                        "origins": org.allowed_origins,
                        "created_at": org.created_at.isoformat(),
                    }
                )
            return rows

    rows = with_runtime(settings, work)
    if json:
        print_json(rows)
        return
    table = listing("org_id", "name", "test public_id", "live public_id")
    for row in rows:
        ids = row["public_ids"]
        assert isinstance(ids, dict)
        table.add_row(str(row["org_id"]), str(row["name"]), ids.get("test"), ids.get("live"))
    console.print(table)


@keys_app.command("rotate")
def rotate(
    org: Annotated[str, typer.Option(help="The org_id")],
    mode: Annotated[str, typer.Option(help="test or live")],
    grace_hours: Annotated[
        float | None, typer.Option(help="How long the old key keeps working (default: settings)")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Issue a new private key; the old one keeps working for a grace period."""
    if mode not in API_MODES:
        raise typer.BadParameter("mode must be test or live")
    api_mode: ApiMode = as_api_mode(mode)
    settings = load_settings()
    hours = settings.keys.rotation_grace_hours if grace_hours is None else grace_hours

    async def work(runtime: Runtime) -> service.KeyPair:
        async with runtime.database.transaction() as session:
            return await service.rotate_key(
                session,
                runtime.clock,
                OrgScope(org_id=org, api_mode=api_mode),
                grace=dt.timedelta(hours=hours),
            )

    pair = with_runtime(settings, work)
    if json:
        print_json(
            {"public_id": pair.public_id, "private_key": pair.private_key, "grace_hours": hours}
        )
        return
    console.print(f"public_id={pair.public_id}\nprivate_key={pair.private_key}")
    console.print(f"[yellow]The previous key stops working in {hours:g} h.[/yellow]")
