"""Reads and writes of an export's staging area (see `exports.models`).

`ExportStaging` is the crawl's staging port (`crawler.ports.CrawlStaging`) for one task: rows in
PostgreSQL, staged attachment bodies in the blob store under `staging/<task id>/`.

The crawl's writes commit without waiting for PostgreSQL's WAL flush (`synchronous_commit` off,
for these transactions only). What they record can always be fetched again: a worker that dies
loses nothing (the database server has the commits), and a machine that crashes loses at most
the last fraction of a second of them, which the resumed crawl fetches again; PostgreSQL never
applies a later commit without the earlier ones (and the next ordinary commit, the task's
progress or packaging's checkpoint, flushes them all), so a page is never kept without the pages
before it. A staged attachment's blob is on disk before its row is written, so a row that
survives always names a whole blob. The crawl's commits are then a few microseconds instead of
a disk flush each (one per page, one per small attachment).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
import psycopg
from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.crawler.ports import Checkpoint
from ehiconnect.db.database import Database, driver_of, pipelined_without_flush_wait
from ehiconnect.exports.models import (
    ExportAttachment,
    ExportError,
    ExportItem,
    ExportStep,
)
from ehiconnect.storage.port import BlobStore

BATCH = 500
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
_INSERT_ITEMS_OF_WRITES = """
    WITH staged AS (
        SELECT * FROM unnest(
            %(types)b::text[], %(ids)b::text[], %(bodies)b::bytea[], %(writes)b::integer[]
        ) AS staged (resource_type, resource_id, body, write)
    ), added AS (
        INSERT INTO export_items (task_id, resource_type, resource_id, body)
        SELECT %(task_id)s, resource_type, resource_id, body FROM staged
        ON CONFLICT DO NOTHING
        RETURNING resource_type, resource_id
    )
    SELECT first.write, count(*)
    FROM added JOIN (
        SELECT DISTINCT ON (resource_type, resource_id) resource_type, resource_id, write
        FROM staged ORDER BY resource_type, resource_id, write
    ) AS first USING (resource_type, resource_id)
    GROUP BY first.write
"""
"""The resources of several writes in one statement whose text never changes (arrays, not a
VALUES row per resource: the driver parses and prepares it once); how many were new, by write
(its index; a resource in two writes counts for the first). Run as the driver's own SQL, so the
arrays can be sent in PostgreSQL's binary format (`%(name)b`): psycopg writes a list of bytes
in text format by escaping every byte of every body (~25 µs per resource, most of a crawl's
time in the driver), in binary format as they are."""

_SAVE_STEPS = """
    INSERT INTO export_steps (task_id, step, cursor, done, count)
    SELECT %(task_id)s, saved.step, saved.cursor, saved.done, saved.added
    FROM unnest(
        %(steps)s::text[], %(cursors)s::text[], %(dones)s::boolean[], %(counts)s::integer[]
    ) AS saved (step, cursor, done, added)
    ON CONFLICT (task_id, step) DO UPDATE SET
        cursor = excluded.cursor, done = excluded.done, count = export_steps.count + excluded.count
"""
_SAVE_ERRORS = """
    INSERT INTO export_errors (task_id, error_id, outcome)
    SELECT %(task_id)s, saved.error_id, saved.outcome::jsonb
    FROM unnest(%(error_ids)s::text[], %(outcomes)s::text[]) AS saved (error_id, outcome)
    ON CONFLICT DO NOTHING
"""


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
    """One step's checkpoint, by the statement the crawl's batched writes use."""
    await _save_steps(await driver_of(session), task_id, {step: (cursor, done, added)})


async def record_error(session: AsyncSession, task_id: str, outcome: dict[str, Any]) -> None:
    """One failure, by the statement the crawl's batched writes use."""
    await _save_errors(await driver_of(session), task_id, [outcome])


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


_MARK_ATTACHMENTS = """
    INSERT INTO export_attachments
        (task_id, binary_id, source_url, content_type, blob_key, size, done)
    SELECT %(task_id)s, marked.* FROM unnest(
        %(binary_ids)b::text[], %(source_urls)b::text[], %(content_types)b::text[],
        %(blob_keys)b::text[], %(sizes)b::bigint[], %(dones)b::boolean[]
    ) AS marked
    ON CONFLICT (task_id, binary_id) DO UPDATE SET
        blob_key = excluded.blob_key, size = excluded.size, done = excluded.done,
        content_type = excluded.content_type
"""
"""Attachments' rows in one statement whose text never changes, whatever their number (arrays
in binary format, as `_INSERT_ITEMS_OF_WRITES`): prepared once by the driver, where a VALUES row
per attachment was built and compiled again for each number of rows."""


async def mark_attachments(
    driver: psycopg.AsyncConnection[Any], task_id: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Record a task's attachments (rows of `ExportAttachment`'s columns but the task id) in one
    statement, sent on `driver`; a binary id already recorded takes the new values (a deferred
    attachment staged after all)."""
    unique = list({row["binary_id"]: row for row in rows}.values())  # one row per binary id
    await driver.execute(
        _MARK_ATTACHMENTS,
        {
            "task_id": task_id,
            "binary_ids": [row["binary_id"] for row in unique],
            "source_urls": [row["source_url"] for row in unique],
            "content_types": [row["content_type"] for row in unique],
            "blob_keys": [row["blob_key"] for row in unique],
            "sizes": [row["size"] for row in unique],
            "dones": [bool(row["done"]) for row in unique],
        },
    )


class GroupCommit(Generic[_Item, _Result]):
    """Writes by concurrent callers share one transaction (a "group commit"): the caller that
    gets the turn writes every item waiting by then, in the order they came, the others find
    theirs committed when their turn comes. Each caller returns once its own item is committed
    (with what the write said of it); when a write fails, its caller gets the error and the items
    of the others wait for the next turn, whose caller tries them again (so nobody is told of a
    failure of a write that was not theirs)."""

    def __init__(self, write: Callable[[list[_Item]], Awaitable[Sequence[_Result]]]) -> None:
        self._write = write
        self._waiting: list[tuple[_Item, asyncio.Future[_Result]]] = []
        self._turn = asyncio.Lock()

    async def record(self, item: _Item) -> _Result:
        committed: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, committed))
        async with self._turn:
            if committed.done():
                return committed.result()
            batch, self._waiting = self._waiting, []
            try:
                results = await self._write([item for item, _ in batch])
            except BaseException:
                self._waiting[:0] = [entry for entry in batch if entry[1] is not committed]
                raise
            for (_, done), result in zip(batch, results, strict=True):
                done.set_result(result)
        return committed.result()


@dataclass(frozen=True)
class _Write:
    """One of the crawl's writes: resources to stage, the step to checkpoint with them (its
    cursor and whether it is done) and an error to report, any of them."""

    resources: Sequence[dict[str, Any]] = ()
    step: tuple[str, str | None, bool] | None = None
    error: dict[str, Any] | None = None


async def write_together(
    driver: psycopg.AsyncConnection[Any], task_id: str, writes: Sequence[_Write]
) -> list[int]:
    """Several writes in one transaction, in at most three statements whatever their number
    (resources, steps, errors), sent on `driver` (in pipeline mode: the insert with the
    transaction's BEGIN, then steps and errors, which need its counts, in a second round trip);
    how many resources each one added. A step named by several writes ends as the last one
    left it (a search's pages are written in order)."""
    types: list[str] = []
    ids: list[str] = []
    bodies: list[bytes] = []
    indexes: list[int] = []
    for index, write in enumerate(writes):
        for resource in write.resources:
            if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
                types.append(resource["resourceType"])
                ids.append(str(resource["id"]))
                bodies.append(orjson.dumps(resource))
                indexes.append(index)
    added = [0] * len(writes)
    if types:
        counted = await driver.execute(
            _INSERT_ITEMS_OF_WRITES,
            {"task_id": task_id, "types": types, "ids": ids, "bodies": bodies, "writes": indexes},
        )
        for index, count in await counted.fetchall():
            added[index] = int(count)
    steps: dict[str, tuple[str | None, bool, int]] = {}
    for index, write in enumerate(writes):
        if write.step is not None:
            name, cursor, done = write.step
            earlier = steps.get(name)
            steps[name] = (cursor, done, added[index] + (earlier[2] if earlier else 0))
    await _save_steps(driver, task_id, steps)
    await _save_errors(driver, task_id, [w.error for w in writes if w.error is not None])
    return added


async def _save_steps(
    driver: psycopg.AsyncConnection[Any],
    task_id: str,
    steps: dict[str, tuple[str | None, bool, int]],
) -> None:
    """Each step's cursor and whether it is done (step → cursor, done, resources it added)."""
    if steps:
        await driver.execute(
            _SAVE_STEPS,
            {
                "task_id": task_id,
                "steps": list(steps),
                "cursors": [cursor for cursor, _, _ in steps.values()],
                "dones": [done for _, done, _ in steps.values()],
                "counts": [count for _, _, count in steps.values()],
            },
        )


async def _save_errors(
    driver: psycopg.AsyncConnection[Any], task_id: str, outcomes: Sequence[dict[str, Any]]
) -> None:
    """Each failure's OperationOutcome, once per id (a resumed crawl may meet one again)."""
    errors = {str(outcome["id"]): outcome for outcome in outcomes}
    if errors:
        await driver.execute(
            _SAVE_ERRORS,
            {
                "task_id": task_id,
                "error_ids": list(errors),
                "outcomes": [orjson.dumps(outcome).decode() for outcome in errors.values()],
            },
        )


class ExportStaging:
    """One task's staging area as the crawl writes it (`crawler.ports.CrawlStaging`): each
    write in one transaction, so a page and its checkpoint, or a failure and its step, are kept
    together or not at all. The writes made at the same moment share that transaction
    (`GroupCommit`): pages of several searches and reads in one stream, attachments' rows (one
    statement for all) in another, so a large page does not hold up the small rows. One
    checkout, begin and commit of a connection for all of them, instead of one each."""

    def __init__(self, database: Database, blobs: BlobStore, task_id: str) -> None:
        self._database = database
        self._blobs = blobs
        self._task_id = task_id
        self._writes: GroupCommit[_Write, int] = GroupCommit(self._write_together)
        self._attachment_rows: GroupCommit[dict[str, Any], None] = GroupCommit(
            self._write_attachment_rows
        )

    async def _write_together(self, writes: list[_Write]) -> list[int]:
        async with self._write() as driver:
            return await write_together(driver, self._task_id, writes)

    async def _write_attachment_rows(self, rows: list[dict[str, Any]]) -> list[None]:
        async with self._write() as driver:
            await mark_attachments(driver, self._task_id, rows)
        return [None] * len(rows)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A transaction whose commit does not wait for the WAL flush (see the module's doc), its
        statements sent straight to the driver, pipelined: the transaction's BEGIN, that setting
        and the first statement go in one round trip."""
        async with (
            self._database.transaction() as session,
            pipelined_without_flush_wait(session) as driver,
        ):
            yield driver

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
        return await self._writes.record(_Write(resources=resources))

    async def stage_page(
        self, step: str, resources: Sequence[dict[str, Any]], *, next_url: str | None
    ) -> int:
        return await self._writes.record(
            _Write(resources=resources, step=(step, next_url, next_url is None))
        )

    async def record_failure(self, step: str, outcome: dict[str, Any]) -> None:
        await self._writes.record(_Write(step=(step, None, True), error=outcome))

    async def stage_attachment(
        self, binary_id: str, *, source_url: str, content_type: str, chunks: Sequence[bytes]
    ) -> int:
        key = f"{staging_folder(self._task_id)}/{binary_id}"
        async with self._blobs.open_writer(key) as writer:
            for chunk in chunks:
                await writer.write(chunk)
        size = writer.stored.size
        await self._attachment_rows.record(
            {
                "binary_id": binary_id,
                "source_url": source_url,
                "content_type": content_type,
                "blob_key": key,
                "size": size,
                "done": True,
            }
        )
        return size

    async def defer_attachment(
        self, binary_id: str, *, source_url: str, content_type: str | None, size: int | None
    ) -> None:
        await self._attachment_rows.record(
            {
                "binary_id": binary_id,
                "source_url": source_url,
                "content_type": content_type,
                "blob_key": None,
                "size": size,
                "done": False,
            }
        )


def staging_folder(task_id: str) -> str:
    """The blob-store folder of a task's staged attachment bodies."""
    return f"staging/{task_id}"
