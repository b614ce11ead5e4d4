"""Reads and writes of an export's staging area (see `exports.models`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.db.database import Database
from ehiconnect.exports.models import (
    ExportAttachment,
    ExportError,
    ExportItem,
    ExportStep,
)

BATCH = 500


async def stage_resources(
    session: AsyncSession, task_id: str, resources: Iterable[dict[str, Any]]
) -> int:
    """Insert resources not staged yet; how many were new. Entries without type/id are skipped."""
    rows = [
        {
            "task_id": task_id,
            "resource_type": r["resourceType"],
            "resource_id": str(r["id"]),
            "body": orjson.dumps(r),
        }
        for r in resources
        if isinstance(r, dict) and r.get("resourceType") and r.get("id")
    ]
    if not rows:
        return 0
    result = await session.execute(
        insert(ExportItem).values(rows).on_conflict_do_nothing().returning(ExportItem.resource_id)
    )
    return len(result.all())


async def get_step(session: AsyncSession, task_id: str, step: str) -> ExportStep | None:
    return await session.get(ExportStep, (task_id, step))


@dataclass(frozen=True)
class StepState:
    cursor: str | None
    done: bool


async def load_steps(session: AsyncSession, task_id: str) -> dict[str, StepState]:
    """Every checkpointed step of a task, in one query (a resumed crawl looks each one up)."""
    rows = await session.execute(
        select(ExportStep.step, ExportStep.cursor, ExportStep.done).where(
            ExportStep.task_id == task_id
        )
    )
    return {step: StepState(cursor, done) for step, cursor, done in rows.all()}


async def load_attachments(session: AsyncSession, task_id: str) -> dict[str, bool]:
    """binary id → done (staged) for every attachment recorded so far, in one query."""
    rows = await session.execute(
        select(ExportAttachment.binary_id, ExportAttachment.done).where(
            ExportAttachment.task_id == task_id
        )
    )
    return {binary_id: bool(done) for binary_id, done in rows.all()}


async def save_step(
    session: AsyncSession, task_id: str, step: str, *, cursor: str | None, done: bool, added: int
) -> None:
    statement = insert(ExportStep).values(
        task_id=task_id, step=step, cursor=cursor, done=done, count=added
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ExportStep.task_id, ExportStep.step],
            set_={"cursor": cursor, "done": done, "count": ExportStep.count + added},
        )
    )


async def record_error(session: AsyncSession, task_id: str, outcome: dict[str, Any]) -> None:
    await session.execute(
        insert(ExportError)
        .values(task_id=task_id, error_id=str(outcome["id"]), outcome=outcome)
        .on_conflict_do_nothing()
    )


async def iter_items(
    database: Database, task_id: str, *, types: frozenset[str] | None = None
) -> AsyncIterator[tuple[str, str, bytes]]:
    """Every staged resource as (type, id, JSON bytes), in (type, id) order, a batch at a time."""
    after: tuple[str, str] = ("", "")
    while True:
        async with database.transaction() as session:
            query = (
                select(ExportItem.resource_type, ExportItem.resource_id, ExportItem.body)
                .where(
                    ExportItem.task_id == task_id,
                    tuple_(ExportItem.resource_type, ExportItem.resource_id) > tuple_(*after),
                )
                .order_by(ExportItem.resource_type, ExportItem.resource_id)
                .limit(BATCH)
            )
            if types is not None:
                query = query.where(ExportItem.resource_type.in_(types))
            rows = (await session.execute(query)).all()
        if not rows:
            return
        for resource_type, resource_id, body in rows:
            yield resource_type, resource_id, body
        after = (rows[-1][0], rows[-1][1])


async def staged_keys(
    session: AsyncSession, task_id: str, keys: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    if not keys:
        return set()
    rows = await session.execute(
        select(ExportItem.resource_type, ExportItem.resource_id).where(
            ExportItem.task_id == task_id,
            func.concat(ExportItem.resource_type, "/", ExportItem.resource_id).in_(
                [f"{t}/{i}" for t, i in keys]
            ),
        )
    )
    return {(t, i) for t, i in rows.all()}


async def clear_staging(session: AsyncSession, task_id: str) -> None:
    for model in (ExportItem, ExportStep, ExportError, ExportAttachment):
        await session.execute(delete(model).where(model.task_id == task_id))


async def mark_attachment(
    session: AsyncSession,
    task_id: str,
    binary_id: str,
    *,
    source_url: str,
    content_type: str | None,
    blob_key: str | None = None,
    size: int | None = None,
    done: bool = False,
) -> None:
    statement = insert(ExportAttachment).values(
        task_id=task_id,
        binary_id=binary_id,
        source_url=source_url,
        content_type=content_type,
        blob_key=blob_key,
        size=size,
        done=done,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ExportAttachment.task_id, ExportAttachment.binary_id],
            set_={"blob_key": blob_key, "size": size, "done": done, "content_type": content_type},
        )
    )
