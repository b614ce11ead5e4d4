"""What a CLI table looks like in a terminal of a given width, cell by cell."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table


def table_cells(table: Table, width: int) -> list[list[str]]:
    """Each body line of `table` rendered `width` columns wide, split into its cells' text."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(table)
    lines = console.export_text().splitlines()
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line[:1] == "│"]
