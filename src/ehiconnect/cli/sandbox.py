"""`ehiconnect sandbox`: serve the synthetic health systems and show how to sign in."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from ehiconnect.sandbox import (
    ASYMMETRIC_CLIENT_ID,
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    DEFAULT_HOST,
    DEFAULT_PORT,
    PUBLIC_CLIENT_ID,
    SandboxConfig,
    build_sandbox_app,
    list_personas,
)

console = Console()


def register(app: typer.Typer) -> None:
    """Add the `sandbox` command to the main CLI."""
    app.command("sandbox")(sandbox)


def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on")] = DEFAULT_PORT,
    public_url: Annotated[
        str | None,
        typer.Option(help="Base URL clients use, if not http://host:port (e.g. behind a proxy)"),
    ] = None,
) -> None:
    """Serve the sandbox health systems (synthetic patients, SMART on FHIR, fault injection)."""
    config = SandboxConfig(public_base_url=public_url)
    base = public_url.rstrip("/") if public_url else f"http://{_display_host(host)}:{port}"
    console.print(systems_table(config, base))
    console.print(personas_table(config))
    console.print(
        f"Clients: [bold]{PUBLIC_CLIENT_ID}[/bold] (public, PKCE), "
        f"[bold]{CONFIDENTIAL_CLIENT_ID}[/bold] (client_secret_basic, secret "
        f"[bold]{CONFIDENTIAL_CLIENT_SECRET}[/bold]), [bold]{ASYMMETRIC_CLIENT_ID}[/bold] "
        "(private_key_jwt, sandbox keys). Faults: PUT /_admin/<system>/faults."
    )
    console.print(f"Sandbox listening on [bold]{base}[/bold] (Ctrl-C to stop)")
    uvicorn.run(
        build_sandbox_app(config),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # behind a proxy, --public-url says how clients reach it
    )


def systems_table(config: SandboxConfig, base: str) -> Table:
    """Health systems with their FHIR base URLs (never truncated) and quirks."""
    table = Table(title="ehiconnect sandbox: synthetic health systems")
    table.add_column("System", no_wrap=True)
    width = max(len(f"{base}/{s.slug}/fhir") for s in config.systems)
    table.add_column("FHIR base URL (= aud)", no_wrap=True, min_width=width)
    table.add_column("Behaviour")
    for system in config.systems:
        table.add_row(system.slug, f"{base}/{system.slug}/fhir", system.behaviour)
    return table


def personas_table(config: SandboxConfig) -> Table:
    """Who can sign in where: username, password, record size."""
    table = Table(title="Test patients (sign in at the portal with these)")
    for column in ("System", "Username", "Password", "Record"):
        table.add_column(column, no_wrap=column != "Record")
    for system in config.systems:
        for persona in list_personas(system):
            table.add_row(
                system.slug,
                persona.username,
                persona.password,
                f"{persona.size_class}: {persona.description}",
            )
    return table


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - only choosing what to print
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
