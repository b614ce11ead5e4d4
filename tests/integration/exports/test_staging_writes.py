"""The crawl's writes made at the same moment share a transaction on PostgreSQL
(`exports.staging.ExportStaging`): each caller still learns how many of its own resources were
new, a step ends as its last write left it, and every error is kept once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from ehiconnect.crawler.ports import Checkpoint
from ehiconnect.exports.models import ExportError, ExportItem
from ehiconnect.exports.staged_db import PACKAGE_STEP, DatabaseStagedExport
from ehiconnect.exports.staging import ExportStaging
from ehiconnect.runtime import Runtime

TASK = "a" * 32


def observation(n: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"obs{n}", "status": "final"}


async def test_writes_made_together_each_count_their_own_new_resources(runtime: Runtime) -> None:
    staging = ExportStaging(runtime.database, runtime.blobs, TASK)

    added = await asyncio.gather(
        # Takes the first turn alone; the five after it wait and share the next transaction.
        staging.record_failure(
            "read:Location/gone", {"resourceType": "OperationOutcome", "id": "e1"}
        ),
        staging.stage_page("search:A", [observation(n) for n in range(3)], next_url="A2"),
        staging.stage_page("search:B", [observation(n) for n in range(3, 5)], next_url=None),
        staging.stage_resources([{"resourceType": "Practitioner", "id": "pr1"}]),
        staging.stage_resources([observation(0)]),  # on page A too: counted once, for page A
        staging.record_failure(
            "read:Location/gone2", {"resourceType": "OperationOutcome", "id": "e2"}
        ),
    )
    second = await staging.stage_page("search:A", [observation(5)], next_url=None)

    assert added == [None, 3, 2, 1, 0, None]
    assert second == 1
    assert await staging.checkpoints() == {
        "search:A": Checkpoint(cursor=None, done=True),
        "search:B": Checkpoint(cursor=None, done=True),
        "read:Location/gone": Checkpoint(cursor=None, done=True),
        "read:Location/gone2": Checkpoint(cursor=None, done=True),
    }
    async with runtime.database.transaction() as session:
        items = (await session.execute(select(ExportItem.resource_id))).scalars().all()
        errors = (await session.execute(select(ExportError.error_id, ExportError.outcome))).all()
    assert sorted(items) == sorted([f"obs{n}" for n in range(6)] + ["pr1"])
    assert sorted(errors) == [
        ("e1", {"resourceType": "OperationOutcome", "id": "e1"}),
        ("e2", {"resourceType": "OperationOutcome", "id": "e2"}),
    ]
    staged = [resource async for resource in staging.staged_resources()]
    assert {r["id"] for r in staged} == {f"obs{n}" for n in range(6)} | {"pr1"}


async def test_packagings_checkpoint_and_failures_share_the_crawls_rows(runtime: Runtime) -> None:
    """Packaging writes its own step and the attachments it could not fetch into the tables the
    crawl writes: its cursor moves on, a failure met again on resume is kept once, in id order
    beside the crawl's."""
    crawl = ExportStaging(runtime.database, runtime.blobs, TASK)
    await crawl.record_failure(
        "read:Location/gone", {"resourceType": "OperationOutcome", "id": "e2"}
    )
    packaging = DatabaseStagedExport(runtime.database, TASK)

    assert await packaging.checkpoint() is None
    await packaging.save_checkpoint("Observation/obs1")
    await packaging.save_checkpoint("Observation/obs9")
    failed = {"resourceType": "OperationOutcome", "id": "e1", "issue": [{"code": "not-found"}]}
    await packaging.record_error(failed)
    await packaging.record_error({**failed, "issue": []})  # the same attachment, on resume

    assert await packaging.checkpoint() == "Observation/obs9"
    assert (await crawl.checkpoints())[PACKAGE_STEP] == Checkpoint("Observation/obs9", False)
    assert await packaging.errors() == [
        failed,
        {"resourceType": "OperationOutcome", "id": "e2"},
    ]
