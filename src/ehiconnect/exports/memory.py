"""An export's staging area in memory, as packaging reads it (`ports.StagedExport`).

For unit tests of packaging (`tests/unit/exports`), like `storage.memory` for blobs and
`crawler.memory` for the crawl: the same reads as `staged_db.DatabaseStagedExport`, from dicts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from ehiconnect.exports.ports import StagedAttachment


class MemoryStagedExport:
    def __init__(
        self,
        resources: Iterable[dict[str, Any]] = (),
        attachments: Iterable[StagedAttachment] = (),
    ) -> None:
        self.items: dict[tuple[str, str], bytes] = {
            (r["resourceType"], str(r["id"])): orjson.dumps(r) for r in resources
        }
        self.staged_attachments = {a.binary_id: a for a in attachments}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.saved_checkpoint: str | None = None
        self.checkpoints_saved = 0

    async def resources(
        self, *, types: frozenset[str] | None = None
    ) -> AsyncIterator[tuple[str, bytes]]:
        for (resource_type, _), body in sorted(self.items.items()):
            if types is None or resource_type in types:
                yield resource_type, body

    async def resource_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource_type, _ in self.items:
            counts[resource_type] = counts.get(resource_type, 0) + 1
        return counts

    async def binary_resource_ids(self) -> set[str]:
        return {resource_id for kind, resource_id in self.items if kind == "Binary"}

    async def attachments(self, *, from_binary_id: str) -> list[StagedAttachment]:
        return [a for key, a in sorted(self.staged_attachments.items()) if key >= from_binary_id]

    async def errors(self) -> list[dict[str, Any]]:
        return [outcome for _, outcome in sorted(self.outcomes.items())]

    async def checkpoint(self) -> str | None:
        return self.saved_checkpoint

    async def save_checkpoint(self, cursor: str) -> None:
        self.saved_checkpoint = cursor
        self.checkpoints_saved += 1

    async def record_error(self, outcome: dict[str, Any]) -> None:
        self.outcomes.setdefault(str(outcome["id"]), outcome)
