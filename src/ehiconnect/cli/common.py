"""What every command shares: settings, logging, and running async work against the runtime."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ehiconnect.errors import ApiError
from ehiconnect.logging import configure_logging
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    settings = Settings.load()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the runtime, run `work`, and turn an ApiError into a clear message and exit code 1."""

    async def run() -> T:
        async with Runtime.open(settings) as runtime:
            return await work(runtime)

    try:
        return asyncio.run(run())
    except ApiError as exc:
        err_console.print(f"[red]error:[/red] {exc.description}")
        raise typer.Exit(1) from None


def print_json(data: object) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def listing(*headers: str, title: str | None = None) -> Table:
    """A table of records whose cells fold onto more lines instead of ending in an ellipsis when
    the terminal is narrow: ids, keys and URLs are read and copied whole."""
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table
