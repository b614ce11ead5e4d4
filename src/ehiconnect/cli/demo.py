"""`ehiconnect demo`: the whole system, end to end, on embedded defaults, with nothing to set up.

This module is the command: its options, the choice of test patient, the port check, and how a
failure is told. The run itself (`demo_run`) is imported only when the command runs, so the
web stack it needs does not slow every other `ehiconnect` command.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from ehiconnect.cli.common import console, err_console, load_settings, print_json
from ehiconnect.cli.demo_logic import DemoFailed
from ehiconnect.cli.demo_ports import check_ports, listeners, set_ports
from ehiconnect.logging import configure_logging
from ehiconnect.sandbox.config import HealthSystem, Persona, SandboxConfig
from ehiconnect.tracker.settings import TrackerSettings

if TYPE_CHECKING:
    from ehiconnect.cli.demo_run import DemoRun


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the main CLI."""
    app.command("demo")(demo)


def demo(
    persona: Annotated[str, typer.Option(help="Sandbox patient who consents (username)")] = "amy",
    system: Annotated[
        str | None, typer.Option(help="Sandbox health system (default: the patient's)")
    ] = None,
    keep_running: Annotated[
        bool, typer.Option(help="Leave every service up after the summary, until Ctrl-C")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the collection")] = 600.0,
    api_port: Annotated[int | None, typer.Option(help="Platform API port (default 8400)")] = None,
    sandbox_port: Annotated[int | None, typer.Option(help="Sandbox port (default 8500)")] = None,
    tracker_port: Annotated[int | None, typer.Option(help="Tracker port (default 8600)")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    verbose: Annotated[bool, typer.Option(help="Show the services' logs")] = False,
) -> None:
    """See it work: a sandbox patient consents and the tracker collects their record.

    Runs the platform API and worker, the sandbox health systems and the tracker in this process
    on embedded defaults (data in the data directory, `.ehiconnect`), connects a test patient
    through the real consent flow without a browser, and lets the tracker export, receive the
    signed webhook, download and ingest into its FHIR store and Parquet. Running it again reuses
    the demo organization and its keys. Everything stops at the end unless --keep-running.
    """
    settings = load_settings()
    tracker_settings = TrackerSettings.load()
    if not verbose:
        configure_logging("WARNING", settings.log_format)
    chosen = choose_patient(system, persona)
    set_ports(settings, tracker_settings, api_port, sandbox_port, tracker_port)
    settings.sandbox.enabled = True  # the test-mode catalog must list the sandbox
    run: DemoRun | None = None
    try:
        check_ports(listeners(settings, tracker_settings))
        from ehiconnect.cli.demo_run import DemoRun

        run = DemoRun(
            settings,
            *chosen,
            tracker_settings=tracker_settings,
            out=err_console if json else console,
            keep_running=keep_running,
            give_up_after=timeout,
            as_json=json,
        )
        asyncio.run(run.run())
    except DemoFailed as failure:
        if json:  # still one JSON object on stdout, for scripts that parse it
            print_json({"success": False, "error": failure.message, "hint": failure.hint})
        err_console.print(f"[red]demo failed:[/red] {failure.message}", soft_wrap=True)
        if failure.hint:
            err_console.print(f"what to do: {failure.hint}", soft_wrap=True)
        raise typer.Exit(failure.exit_code) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        if run is None or run.summary is None:  # after the summary: how --keep-running ends
            err_console.print("demo interrupted; every service it started is stopped")
            raise typer.Exit(130) from None


def choose_patient(slug: str | None, username: str) -> tuple[HealthSystem, Persona]:
    """The health system and its test patient (without --system: the system the patient is at)."""
    systems = SandboxConfig().systems
    candidates = [s for s in systems if slug in (None, s.slug)]
    if not candidates:
        slugs = ", ".join(s.slug for s in systems)
        raise typer.BadParameter(f"no sandbox system {slug!r}; choose one of {slugs}")
    for system in candidates:
        persona = system.persona_by_username(username)
        if persona is not None:
            return system, persona
    names = ", ".join(f"{p.username} ({s.slug})" for s in candidates for p in s.personas)
    raise typer.BadParameter(f"no sandbox patient {username!r}; choose one of {names}")
