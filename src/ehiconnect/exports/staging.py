"""Reads and writes of an export's staging area (see `exports.models`).

`ExportStaging` is the crawl's staging port (`crawler.ports.CrawlStaging`) for one task: rows in
PostgreSQL, staged attachment bodies in the blob store under `staging/<task id>/`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.crawler.ports import Checkpoint
from ehiconnect.db.database import Database
from ehiconnect.exports.models import (
    ExportAttachment,
    ExportError,
    ExportItem,
    ExportStep,
)
from ehiconnect.storage.port import BlobStore

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


async def load_steps(session: AsyncSession, task_id: str) -> dict[str, Checkpoint]:
    """Every checkpointed step of a task, in one query (a resumed crawl looks each one up)."""
    rows = await session.execute(
        select(ExportStep.step, ExportStep.cursor, ExportStep.done).where(
            ExportStep.task_id == task_id
        )
    )
    return {step: Checkpoint(cursor, done) for step, cursor, done in rows.all()}


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


class ExportStaging:
    """One task's staging area as the crawl writes it (`crawler.ports.CrawlStaging`): each
    method one transaction, so a page and its checkpoint, or a failure and its step, are kept
    together or not at all."""

    def __init__(self, database: Database, blobs: BlobStore, task_id: str) -> None:
        self._database = database
        self._blobs = blobs
        self._task_id = task_id

    async def checkpoints(self) -> dict[str, Checkpoint]:
        async with self._database.transaction() as session:
            return await load_steps(session, self._task_id)

    async def recorded_attachments(self) -> dict[str, bool]:
        async with self._database.transaction() as session:
            return await load_attachments(session, self._task_id)

    async def staged_resources(self) -> AsyncIterator[dict[str, Any]]:
        async for _, _, body in iter_items(self._database, self._task_id):
            yield orjson.loads(body)

    async def stage_resources(self, resources: Sequence[dict[str, Any]]) -> int:
        async with self._database.transaction() as session:
            return await stage_resources(session, self._task_id, resources)

    async def stage_page(
        self, step: str, resources: Sequence[dict[str, Any]], *, next_url: str | None
    ) -> int:
        async with self._database.transaction() as session:
            added = await stage_resources(session, self._task_id, resources)
            await save_step(
                session, self._task_id, step, cursor=next_url, done=next_url is None, added=added
            )
        return added

    async def record_failure(self, step: str, outcome: dict[str, Any]) -> None:
        async with self._database.transaction() as session:
            await record_error(session, self._task_id, outcome)
            await save_step(session, self._task_id, step, cursor=None, done=True, added=0)

    async def stage_attachment(
        self, binary_id: str, *, source_url: str, content_type: str, chunks: Sequence[bytes]
    ) -> int:
        key = f"staging/{self._task_id}/{binary_id}"
        async with self._blobs.open_writer(key) as writer:
            for chunk in chunks:
                await writer.write(chunk)
        size = writer.stored.size
        async with self._database.transaction() as session:
            await mark_attachment(
                session,
                self._task_id,
                binary_id,
                source_url=source_url,
                content_type=content_type,
                blob_key=key,
                size=size,
                done=True,
            )
        return size

    async def defer_attachment(
        self, binary_id: str, *, source_url: str, content_type: str | None, size: int | None
    ) -> None:
        async with self._database.transaction() as session:
            await mark_attachment(
                session,
                self._task_id,
                binary_id,
                source_url=source_url,
                content_type=content_type,
                size=size,
                done=False,
            )
