"""Writes of the crawl made at the same moment share one transaction (`staging.GroupCommit`),
and each caller returns only once its own item is committed (with what the write said of it),
or with its own write's error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ehiconnect.exports.staging import GroupCommit


class Table:
    """A table whose writes take a moment; `fail_next` makes the next write fail."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.fail_next = False

    async def write(self, rows: list[dict[str, Any]]) -> list[str]:
        await asyncio.sleep(0.01)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the database went away")
        self.writes.append([row["id"] for row in rows])
        return [f"{row['id']} written" for row in rows]


async def test_rows_recorded_together_share_writes_and_each_is_written_once() -> None:
    table = Table()
    rows = GroupCommit(table.write)

    results = await asyncio.gather(*(rows.record({"id": f"r{n}"}) for n in range(10)))

    assert results == [f"r{n} written" for n in range(10)]  # each caller gets its own result
    written = [row for write in table.writes for row in write]
    assert sorted(written) == sorted(f"r{n}" for n in range(10))
    assert len(table.writes) < 10  # the ones waiting behind the first write share the next


async def test_a_failed_write_fails_its_caller_and_the_others_rows_are_written_after() -> None:
    table = Table()
    rows = GroupCommit(table.write)
    table.fail_next = True

    outcomes = await asyncio.gather(
        *(rows.record({"id": f"r{n}"}) for n in range(5)), return_exceptions=True
    )

    assert isinstance(outcomes[0], ConnectionError)
    assert outcomes[1:] == [f"r{n} written" for n in range(1, 5)]
    written = sorted(row for write in table.writes for row in write)
    assert written == ["r1", "r2", "r3", "r4"]  # r0's write failed: r0 was told so


async def test_a_caller_cancelled_while_writing_leaves_the_others_rows_to_the_next_write() -> None:
    table = Table()
    rows = GroupCommit(table.write)
    first = asyncio.create_task(rows.record({"id": "r0"}))
    await asyncio.sleep(0)  # r0 has the turn and is writing
    others = [asyncio.create_task(rows.record({"id": f"r{n}"})) for n in range(1, 4)]
    await asyncio.sleep(0)
    first.cancel()

    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.gather(*others)

    assert sorted(row for write in table.writes for row in write) == ["r1", "r2", "r3"]
