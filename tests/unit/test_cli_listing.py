"""The CLI's record listings (orgs, keys, connections, endpoints, catalog, accounts) keep their
ids, keys and URLs whole in a narrow terminal: they fold, they are never cut."""

from __future__ import annotations

import uuid

import pytest

from ehiconnect.cli.common import listing
from tests.support.rendering import table_cells


@pytest.mark.parametrize("width", [50, 80, 200])
def test_an_orgs_listing_gives_back_every_id_whole(width: int) -> None:
    rows = [
        (
            str(uuid.uuid4()),
            "Acme Health",
            f"pk_test_{uuid.uuid4().hex}",
            f"pk_live_{uuid.uuid4().hex}",
        )
        for _ in range(2)
    ]
    table = listing("org_id", "name", "test public_id", "live public_id")
    for row in rows:
        table.add_row(*row)
    cells = table_cells(table, width)

    assert "…" not in "".join(map("".join, cells))
    for column in range(4):  # each column, read down, is its values one after another
        assert "".join(row[column] for row in cells).replace(" ", "") == "".join(
            row[column] for row in rows
        ).replace(" ", "")
