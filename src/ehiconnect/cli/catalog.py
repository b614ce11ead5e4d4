"""`ehiconnect catalog ...`: import health systems, set how to connect to them, look them up.

The commands parse arguments and print; the rules live in the catalog feature (`catalog.reading`,
`catalog.admin`, `catalog.builtin`, `catalog.service`), shared with the API and the console.
"""

from __future__ import annotations

import enum
import getpass
import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from ehiconnect.catalog.admin import (
    ClientAuthMethod,
    EndpointChanges,
    configure_endpoint,
    describe_entry,
    endpoint_settings,
)
from ehiconnect.catalog.builtin import BuiltinSourceError, sync_builtin_catalogs
from ehiconnect.catalog.importer import ImportReport, import_catalog
from ehiconnect.catalog.reading import (
    CatalogFormat,
    CatalogInputError,
    import_source_name,
    parse_catalog,
    read_catalog_source,
)
from ehiconnect.catalog.service import CatalogSearcher
from ehiconnect.cli.common import (
    console,
    err_console,
    listing,
    load_settings,
    print_json,
    with_runtime,
)
from ehiconnect.ids import as_api_mode
from ehiconnect.runtime import Runtime

catalog_app = typer.Typer(
    help="The catalog of health systems: import, configure endpoints, search.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]

DEFAULT_MAX_MB = 256


class Mode(enum.StrEnum):
    test = "test"
    live = "live"


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


# --- commands ------------------------------------------------------------------------------------


@catalog_app.command("import")
def import_(
    location: Annotated[str, typer.Argument(help="A catalog file, or an http(s) URL to fetch")],
    source: Annotated[
        str | None,
        typer.Option(help="Name of this catalog source (default: file name stem or URL host)"),
    ] = None,
    platform_type: Annotated[
        str | None,
        typer.Option(help="Platform of a Brands Bundle's endpoints: epic, cerner, smart, …"),
    ] = None,
    catalog_format: Annotated[
        CatalogFormat, typer.Option("--format", help="auto detects a FHIR Bundle")
    ] = CatalogFormat.auto,
    max_mb: Annotated[
        int, typer.Option(min=1, help="Refuse catalogs larger than this many MiB")
    ] = DEFAULT_MAX_MB,
    json: JsonFlag = False,
) -> None:
    """Import a SMART User-access Brands Bundle or a plain catalog; rerunning it changes nothing.

    Entries of the same source missing from the new file are deprecated (no longer searchable,
    still resolvable by id), not deleted.
    """
    settings = load_settings()
    try:
        raw, default_source = read_catalog_source(location, max_bytes=max_mb * 2**20)
        data, used_format = parse_catalog(
            raw, catalog_format=catalog_format, platform_type=platform_type
        )
        name = import_source_name(
            source, default_source, reserved=settings.catalog.builtin_sources.keys()
        )
    except CatalogInputError as exc:
        raise _fail(str(exc)) from None

    async def work(runtime: Runtime) -> ImportReport:
        async with runtime.database.transaction() as session:
            return await import_catalog(session, data, source=name, sandbox=False)

    report = with_runtime(settings, work)
    if json:
        print_json({"source": name, "format": used_format.value, **report.as_json()})
        return
    console.print(
        f"Imported [bold]{location}[/bold] as source [bold]{name}[/bold] ({used_format.value}): "
        f"{len(data.brands)} brands, {len(data.portals)} portals, {len(data.endpoints)} endpoints"
    )
    console.print(report_table(report))


def report_table(report: ImportReport) -> Table:
    table = listing("", "added", "changed", "removed")
    for kind in ("brands", "portals", "endpoints"):
        table.add_row(
            kind,
            str(report.added[kind]),
            str(report.changed[kind]),
            str(report.removed[kind]),
        )
    return table


@catalog_app.command("configure")
def configure(
    endpoint_id: Annotated[str, typer.Argument(help="The catalog endpoint id")],
    client_id: Annotated[
        str | None, typer.Option(help="The client id registered at the health system")
    ] = None,
    auth_method: Annotated[
        ClientAuthMethod | None,
        typer.Option(help="How the platform authenticates at the token endpoint"),
    ] = None,
    client_secret_stdin: Annotated[
        bool,
        typer.Option(
            "--client-secret-stdin",
            help="Read the client secret from standard input (prompted for on a terminal)",
        ),
    ] = False,
    scopes: Annotated[str | None, typer.Option(help="Scopes to request, space-separated")] = None,
    aud_required: Annotated[
        bool | None,
        typer.Option("--aud-required/--no-aud-required", help="Send the aud parameter"),
    ] = None,
    allow_private_network: Annotated[
        bool | None,
        typer.Option(
            "--allow-private-network/--no-allow-private-network",
            help="Live mode: let exports follow this endpoint's data to private addresses "
            "(an on-premises EHR); cloud metadata addresses stay refused",
        ),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Set how the platform connects to one endpoint. Options not given keep their value.

    The client secret is never an option value (it would land in shell history): pipe it in,
    e.g. `ehiconnect catalog configure ID --auth-method client_secret_basic --client-secret-stdin
    < secret.txt`. It is stored sealed by the vault.

    Exports in live mode fetch URLs outside the endpoint's FHIR base (attachments elsewhere,
    paging links to another host) only from public addresses; `--allow-private-network` lifts that
    for a health system that lives on a private network.
    """
    changes = EndpointChanges(
        client_id=client_id,
        auth_method=auth_method,
        client_secret=_read_secret() if client_secret_stdin else None,
        scopes=scopes,
        aud_required=aud_required,
        allow_private_network=allow_private_network,
    )

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            endpoint = await configure_endpoint(session, runtime.cipher, endpoint_id, changes)
            return endpoint_settings(endpoint)

    view = with_runtime(load_settings(), work)
    if json:
        print_json(view)
        return
    console.print(_settings_table(view))
    if view["sandbox"]:
        console.print(
            "[yellow]This is a sandbox endpoint: the API resets its client id and method to "
            "the sandbox's public client when it starts.[/yellow]"
        )


def _read_secret() -> str:
    typed = sys.stdin.isatty()
    secret = (getpass.getpass("Client secret: ") if typed else sys.stdin.read()).strip()
    if not secret:
        raise _fail("no client secret arrived on standard input")
    return secret


def _settings_table(view: dict[str, Any]) -> Table:
    table = listing("setting", "value", title=f"endpoint {view['id']}")
    for key in (
        "url", "platform_type", "status", "client_id", "client_auth_method",
        "client_secret_set", "scopes", "aud_required", "allow_private_network",
    ):  # fmt: skip
        table.add_row(key, str(view[key]))
    return table


@catalog_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Name or alias; typos are tolerated")] = "",
    mode: Annotated[Mode, typer.Option(help="test: sandbox systems; live: imported ones")] = (
        Mode.live
    ),
    city: Annotated[str | None, typer.Option(help="Only brands with a location here")] = None,
    state: Annotated[str | None, typer.Option(help="Only brands in this state (e.g. OR)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Results to show")] = 20,
    json: JsonFlag = False,
) -> None:
    """Search the catalog as the widget does."""

    async def work(runtime: Runtime) -> tuple[int, list[dict[str, Any]]]:
        async with runtime.database.transaction() as session:
            page, brands = await CatalogSearcher().search(
                session,
                as_api_mode(mode.value),
                query=query,
                city=city,
                state=state,
                limit=limit,
                search_after=None,
            )
            return page.total, brands

    total, brands = with_runtime(load_settings(), work)
    if json:
        print_json({"total": total, "results": brands})
        return
    table = listing("brand id", "name", "locations", "endpoints", title=f"{total} found")
    for brand in brands:
        places = ", ".join(
            sorted(
                {
                    f"{loc.get('city', '')} {loc.get('state', '')}".strip()
                    for loc in brand["locations"]
                }
            )
        )
        endpoints = [e for portal in brand["portals"] for e in portal["endpoints"]]
        table.add_row(
            brand["id"],
            brand["name"],
            places,
            "\n".join(f"{e['id']} ({e['platform_type']}, {e['status']})" for e in endpoints),
        )
    console.print(table)


@catalog_app.command("show")
def show(
    entry_id: Annotated[str, typer.Argument(help="A brand, portal or endpoint id")],
    json: JsonFlag = False,
) -> None:
    """Show one brand, portal or endpoint with its status, source and connection settings."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            return await describe_entry(session, entry_id)

    view = with_runtime(load_settings(), work)
    if json:
        print_json(view)
        return
    table = listing("field", "value", title=f"{view['kind']} {view['id']}")
    for key, value in view.items():
        if key not in ("kind", "portals", "endpoints"):
            table.add_row(key, _plain(value))
    for portal in view.get("portals", []):
        table.add_row("portal", f"{portal['id']}  {portal['name']}")
        for endpoint in portal["endpoints"]:
            table.add_row(
                "  endpoint", f"{endpoint['id']}  {endpoint['url']} ({endpoint['status']})"
            )
    if view["kind"] == "portal":
        for endpoint in view["endpoints"]:
            table.add_row("endpoint", f"{endpoint['id']}  {endpoint['url']} ({endpoint['status']})")
    console.print(table)


def _plain(value: object) -> str:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


@catalog_app.command("sync-sandbox")
def sync_sandbox(json: JsonFlag = False) -> None:
    """List the test-mode catalog: the sandbox health systems at settings.sandbox.base_url (each
    source of settings.catalog.builtin_sources). JSON: one object per source."""
    settings = load_settings()

    async def work(runtime: Runtime) -> dict[str, ImportReport]:
        async with runtime.database.transaction() as session:
            return await sync_builtin_catalogs(
                session, settings.catalog.builtin_sources, base_url=settings.sandbox.base_url
            )

    try:
        reports = with_runtime(settings, work)
    except BuiltinSourceError as exc:
        raise _fail(str(exc)) from None
    for source, report in reports.items():
        if json:
            print_json({"source": source, **report.as_json()})
            continue
        console.print(
            f"Catalog source [bold]{source}[/bold] from [bold]{settings.sandbox.base_url}[/bold]"
        )
        console.print(report_table(report))
