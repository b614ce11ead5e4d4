"""`ehiconnect tracker failures` as a table: nothing an operator needs is cut off in a narrow
terminal."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ehiconnect.cli.tracker import failures_table
from tests.support.rendering import table_cells

REPORT: dict[str, Any] = {
    "total": 3,
    "groups": [
        {
            "reason": "scope_patient_missing",
            "health_system": "brand-harbor",
            "step": "export",
            "count": 2,
            "description": "The health system did not grant the patient scope the export needs; "
            "ask the patient to connect again and allow it",
            "job_ids": [uuid.uuid4().hex, uuid.uuid4().hex],
        },
        {
            "reason": "attempts_exhausted",
            "health_system": "brand-summit",
            "step": "download",
            "count": 1,
            "description": "The download failed on every attempt",
            "job_ids": [uuid.uuid4().hex],
        },
    ],
}


def _cells(width: int) -> list[list[str]]:
    return table_cells(failures_table(REPORT), width)


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_reasons_places_and_job_ids_read_whole_at_any_width(width: int) -> None:
    cells = _cells(width)
    groups = REPORT["groups"]

    def column(index: int) -> str:
        return "".join(row[index] for row in cells)

    assert "…" not in "".join(map("".join, cells))
    assert column(0) == "".join(group["reason"] for group in groups)
    assert column(1) == "".join(group["health_system"] for group in groups)
    assert column(2) == "".join(group["step"] for group in groups)
    assert column(5) == "".join("".join(group["job_ids"]) for group in groups)


def test_a_wide_terminal_gives_each_group_one_line_of_identifiers() -> None:
    first = _cells(200)[0]
    assert first[:4] == ["scope_patient_missing", "brand-harbor", "export", "2"]
    assert first[5] == REPORT["groups"][0]["job_ids"][0]
