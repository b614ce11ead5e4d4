"""`ehiconnect catalog ...`: import health systems, set how to connect to them, look them up."""

from __future__ import annotations

import enum
import getpass
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import orjson
import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect import __version__
from ehiconnect.catalog.brands_bundle import parse_brands_bundle
from ehiconnect.catalog.data import CatalogData
from ehiconnect.catalog.importer import ImportReport, import_catalog
from ehiconnect.catalog.models import CatalogBrand, CatalogEndpoint, CatalogPortal
from ehiconnect.catalog.plain import parse_plain_catalog
from ehiconnect.catalog.service import (
    CatalogSearcher,
    brand_views,
    endpoint_view,
    portal_view,
)
from ehiconnect.cli.common import console, err_console, load_settings, print_json, with_runtime
from ehiconnect.errors import InvalidRequest, NotFound
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.catalog_sync import SOURCE as SANDBOX_SOURCE
from ehiconnect.sandbox.catalog_sync import sync_sandbox_catalog

catalog_app = typer.Typer(
    help="The catalog of health systems: import, configure endpoints, search.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]

DOWNLOAD_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_MB = 256


class CatalogFormat(enum.StrEnum):
    auto = "auto"
    brands_bundle = "brands-bundle"
    plain = "plain"


class AuthMethod(enum.StrEnum):
    none = "none"
    client_secret_basic = "client_secret_basic"  # noqa: S105 (a method name, not a secret)
    private_key_jwt = "private_key_jwt"


class Mode(enum.StrEnum):
    test = "test"
    live = "live"


class CatalogInputError(Exception):
    """The catalog could not be read or understood; the message says what to do."""


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


# --- reading a catalog -------------------------------------------------------------------------


def read_catalog_source(location: str, *, max_bytes: int) -> tuple[bytes, str]:
    """The bytes of a catalog file or http(s) URL, and the default source name for it."""
    if location.startswith(("http://", "https://")):
        host = urlsplit(location).hostname
        if not host:
            raise CatalogInputError(f"{location} is not a usable URL")
        return _download(location, max_bytes=max_bytes), host
    if "://" in location:
        raise CatalogInputError(f"{location}: only files and http(s) URLs can be imported")
    path = Path(location)
    if not path.is_file():
        raise CatalogInputError(f"{path} is not a file; give a catalog file or an http(s) URL")
    size = path.stat().st_size
    if size > max_bytes:
        raise CatalogInputError(
            f"{path} is {size / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
            "raise it with --max-mb"
        )
    return path.read_bytes(), path.stem


def _download(url: str, *, max_bytes: int) -> bytes:
    headers = {
        "Accept": "application/fhir+json, application/json",
        "User-Agent": f"ehiconnect/{__version__}",
    }
    try:
        with (
            httpx.Client(timeout=DOWNLOAD_TIMEOUT_SECONDS, follow_redirects=True) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise CatalogInputError(f"GET {url} answered {response.status_code}; check the URL")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise CatalogInputError(_too_big(url, max_bytes))
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise CatalogInputError(_too_big(url, max_bytes))
            return bytes(body)
    except httpx.TimeoutException:
        raise CatalogInputError(
            f"{url} did not answer within {DOWNLOAD_TIMEOUT_SECONDS:.0f} s; try again later "
            "or download the file and import it from disk"
        ) from None
    except httpx.HTTPError as exc:
        raise CatalogInputError(f"could not fetch {url}: {type(exc).__name__}: {exc}") from None


def _too_big(url: str, max_bytes: int) -> str:
    return f"{url} is larger than {max_bytes / 2**20:.0f} MiB; raise the limit with --max-mb"


def parse_catalog(
    raw: bytes, *, catalog_format: CatalogFormat, platform_type: str | None
) -> tuple[CatalogData, CatalogFormat]:
    """Parse a Brands Bundle or a plain catalog (auto: a FHIR Bundle is a Brands Bundle)."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogInputError(f"the catalog is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CatalogInputError('the catalog must be a JSON object (a Bundle, or {"brands": …})')
    if catalog_format is CatalogFormat.auto:
        is_bundle = document.get("resourceType") == "Bundle"
        catalog_format = CatalogFormat.brands_bundle if is_bundle else CatalogFormat.plain
    try:
        if catalog_format is CatalogFormat.brands_bundle:
            return (
                parse_brands_bundle(document, platform_type=platform_type or "smart"),
                catalog_format,
            )
        if platform_type:
            raise CatalogInputError(
                "--platform-type applies to Brands Bundles only: the plain format names "
                "platform_type on each endpoint"
            )
        if not {"brands", "portals", "endpoints"} & set(document):
            raise CatalogInputError(
                "this is neither a Brands Bundle (resourceType Bundle) nor a plain catalog "
                "(brands, portals, endpoints); see docs/catalog.md"
            )
        return parse_plain_catalog(document), catalog_format
    except (ValueError, TypeError, AttributeError) as exc:
        raise CatalogInputError(f"cannot read the {catalog_format.value} catalog: {exc}") from None


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
    try:
        raw, default_source = read_catalog_source(location, max_bytes=max_mb * 2**20)
        data, used_format = parse_catalog(
            raw, catalog_format=catalog_format, platform_type=platform_type
        )
    except CatalogInputError as exc:
        raise _fail(str(exc)) from None
    name = (source or default_source).strip()
    if not name:
        raise _fail("the source name is empty; pass --source")
    if name == SANDBOX_SOURCE:
        raise _fail(
            f"the source name {SANDBOX_SOURCE!r} is reserved for the sandbox health systems "
            "(`ehiconnect catalog sync-sandbox`); pass another --source"
        )

    async def work(runtime: Runtime) -> ImportReport:
        async with runtime.database.transaction() as session:
            return await import_catalog(session, data, source=name, sandbox=False)

    report = with_runtime(load_settings(), work)
    if json:
        print_json({"source": name, "format": used_format.value, **report.as_json()})
        return
    console.print(
        f"Imported [bold]{location}[/bold] as source [bold]{name}[/bold] ({used_format.value}): "
        f"{len(data.brands)} brands, {len(data.portals)} portals, {len(data.endpoints)} endpoints"
    )
    console.print(report_table(report))


def report_table(report: ImportReport) -> Table:
    table = Table("", "added", "changed", "removed")
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
        AuthMethod | None, typer.Option(help="How the platform authenticates at the token endpoint")
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
    secret = _read_secret() if client_secret_stdin else None
    if scopes is not None and not scopes.split():
        raise _fail("--scopes is empty; give space-separated scopes")

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            endpoint = await session.get(CatalogEndpoint, endpoint_id)
            if endpoint is None:
                raise NotFound(
                    f"no endpoint has id {endpoint_id}; find it with `ehiconnect catalog search`"
                )
            if client_id is not None:
                endpoint.client_id = client_id.strip() or None
            if auth_method is not None:
                endpoint.client_auth_method = auth_method.value
            if scopes is not None:
                endpoint.scopes = " ".join(scopes.split())
            if aud_required is not None:
                endpoint.aud_required = aud_required
            if allow_private_network is not None:
                endpoint.allow_private_network = allow_private_network
            if secret is not None:
                sealed = runtime.cipher.seal(
                    secret, context=f"endpoint:{endpoint.id}:client_secret"
                )
                endpoint.client_secret_kid = sealed.kid
                endpoint.client_secret_ct = sealed.ciphertext
            elif endpoint.client_auth_method == "none" and auth_method is AuthMethod.none:
                # A public client has no secret: drop one left from an earlier setting.
                endpoint.client_secret_kid = None
                endpoint.client_secret_ct = None
            if (
                endpoint.client_auth_method == "client_secret_basic"
                and not endpoint.client_secret_ct
            ):
                raise InvalidRequest(
                    "client_secret_basic needs a client secret: add --client-secret-stdin and "
                    "pipe the secret in"
                )
            await session.flush()
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


def endpoint_settings(endpoint: CatalogEndpoint) -> dict[str, Any]:
    """An endpoint as an operator sees it: its view plus connection settings, never the secret."""
    return {
        **endpoint_view(endpoint),
        "source": endpoint.source,
        "sandbox": endpoint.sandbox,
        "client_id": endpoint.client_id,
        "client_auth_method": endpoint.client_auth_method,
        "client_secret_set": endpoint.client_secret_ct is not None,
        "client_secret_kid": endpoint.client_secret_kid,
        "scopes": endpoint.scopes,
        "aud_required": endpoint.aud_required,
        "allow_private_network": endpoint.allow_private_network,
    }


def _settings_table(view: dict[str, Any]) -> Table:
    table = Table("setting", "value", title=f"endpoint {view['id']}")
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
                "test" if mode is Mode.test else "live",
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
    table = Table("brand id", "name", "locations", "endpoints", title=f"{total} found")
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
    table = Table("field", "value", title=f"{view['kind']} {view['id']}")
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


async def describe_entry(session: AsyncSession, entry_id: str) -> dict[str, Any]:
    """The brand, portal or endpoint with this id, with what an operator needs to know."""
    brand = await session.get(CatalogBrand, entry_id)
    if brand is not None:
        [view] = await brand_views(session, [brand.id])
        return {
            "kind": "brand",
            **view,
            "status": brand.status,
            "merged_into": brand.merged_into,
            "source": brand.source,
            "sandbox": brand.sandbox,
        }
    portal = await session.get(CatalogPortal, entry_id)
    if portal is not None:
        endpoints = {
            eid: e for eid in portal.endpoint_ids if (e := await session.get(CatalogEndpoint, eid))
        }
        return {
            "kind": "portal",
            **portal_view(portal, endpoints),
            "status": portal.status,
            "source": portal.source,
            "sandbox": portal.sandbox,
        }
    endpoint = await session.get(CatalogEndpoint, entry_id)
    if endpoint is not None:
        return {"kind": "endpoint", **endpoint_settings(endpoint)}
    raise NotFound(
        f"no brand, portal or endpoint has id {entry_id}; find it with `ehiconnect catalog search`"
    )


@catalog_app.command("sync-sandbox")
def sync_sandbox(json: JsonFlag = False) -> None:
    """List the sandbox health systems (settings.sandbox.base_url) in the test-mode catalog."""
    settings = load_settings()

    async def work(runtime: Runtime) -> ImportReport:
        async with runtime.database.transaction() as session:
            return await sync_sandbox_catalog(session, settings.sandbox.base_url)

    report = with_runtime(settings, work)
    if json:
        print_json({"source": SANDBOX_SOURCE, **report.as_json()})
        return
    console.print(f"Sandbox catalog from [bold]{settings.sandbox.base_url}[/bold]")
    console.print(report_table(report))
