"""A task's staging area in PostgreSQL, as packaging reads it (`ports.StagedExport`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select

from ehiconnect.db.database import Database
from ehiconnect.exports import staging
from ehiconnect.exports.models import ExportAttachment, ExportError, ExportItem
from ehiconnect.exports.ports import StagedAttachment

PACKAGE_STEP = "package"  # packaging's checkpoint is a step row like the crawl's


class DatabaseStagedExport:
    def __init__(self, database: Database, task_id: str) -> None:
        self._database = database
        self._task_id = task_id

    async def resources(
        self, *, types: frozenset[str] | None = None
    ) -> AsyncIterator[tuple[str, bytes]]:
        async for resource_type, _, body in staging.iter_items(
            self._database, self._task_id, types=types
        ):
            yield resource_type, body

    async def resource_counts(self) -> dict[str, int]:
        async with self._database.transaction() as session:
            rows = await session.execute(
                select(ExportItem.resource_type, func.count())
                .where(ExportItem.task_id == self._task_id)
                .group_by(ExportItem.resource_type)
            )
            return {resource_type: int(count) for resource_type, count in rows.all()}

    async def binary_resource_ids(self) -> set[str]:
        async with self._database.transaction() as session:
            return set(
                await session.scalars(
                    select(ExportItem.resource_id).where(
                        ExportItem.task_id == self._task_id, ExportItem.resource_type == "Binary"
                    )
                )
            )

    async def attachments(self, *, from_binary_id: str) -> list[StagedAttachment]:
        async with self._database.transaction() as session:
            rows = await session.scalars(
                select(ExportAttachment)
                .where(
                    ExportAttachment.task_id == self._task_id,
                    ExportAttachment.binary_id >= from_binary_id,
                )
                .order_by(ExportAttachment.binary_id)
            )
            return [
                StagedAttachment(
                    binary_id=row.binary_id,
                    source_url=row.source_url,
                    content_type=row.content_type,
                    blob_key=row.blob_key,
                    done=row.done,
                )
                for row in rows
            ]

    async def errors(self) -> list[dict[str, Any]]:
        async with self._database.transaction() as session:
            return list(
                await session.scalars(
                    select(ExportError.outcome)
                    .where(ExportError.task_id == self._task_id)
                    .order_by(ExportError.error_id)
                )
            )

    async def checkpoint(self) -> str | None:
        async with self._database.transaction() as session:
            saved = (await staging.load_steps(session, self._task_id)).get(PACKAGE_STEP)
        return saved.cursor if saved else None

    async def save_checkpoint(self, cursor: str) -> None:
        async with self._database.transaction() as session:
            await staging.save_step(
                session, self._task_id, PACKAGE_STEP, cursor=cursor, done=False, added=0
            )

    async def record_error(self, outcome: dict[str, Any]) -> None:
        async with self._database.transaction() as session:
            await staging.record_error(session, self._task_id, outcome)
