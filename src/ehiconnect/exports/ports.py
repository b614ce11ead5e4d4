"""What the exports feature needs from the process, and what packaging reads of a staging area.

`ExportPorts` is built once by the entry point (`Runtime.exports`) and handed to every service
of the feature: nothing in `ehiconnect.exports` reaches for the runtime or another feature's
settings. `StagedExport` is the one task's staging area as packaging sees it, so that packaging
runs the same on PostgreSQL (`exports.staged_db`) and on an in-memory area in unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import procrastinate

from ehiconnect.clock import Clock
from ehiconnect.db.database import Database
from ehiconnect.settings import ExportSettings
from ehiconnect.storage.port import BlobStore


class AccessTokenSource(Protocol):
    """A usable access token for a connection, renewed first when due.

    `rejected` is a token the health system just refused (401): it is renewed unless another
    request already replaced it. Raises `ReconsentRequired` when the patient must sign in again.
    """

    async def __call__(self, org_connection_id: str, rejected: str | None) -> str: ...


@dataclass(frozen=True)
class ExportPorts:
    """What the exports feature needs from the process (built in `runtime.py`)."""

    database: Database
    jobs: procrastinate.App
    clock: Clock
    blobs: BlobStore
    settings: ExportSettings
    public_base_url: str
    """Where customers reach the API: download links in events and Bulk Data manifests."""
    access_token: AccessTokenSource
    """The connections feature's tokens, with its refresh policy (`consent.token_refresh_*`)."""


@dataclass(frozen=True)
class StagedAttachment:
    """An attachment the crawl recorded: staged in a blob (`done`), or left to packaging."""

    binary_id: str
    source_url: str
    content_type: str | None
    blob_key: str | None
    done: bool


class StagedExport(Protocol):
    """One task's staging area as packaging reads it, plus the two records packaging writes back:
    its checkpoint (so a killed run resumes) and a download that failed (the error report)."""

    def resources(self, *, types: frozenset[str] | None = None) -> AsyncIterator[tuple[str, bytes]]:
        """Every staged resource (of `types`) as (type, compact JSON), in (type, id) order."""
        ...

    async def resource_counts(self) -> dict[str, int]:
        """How many resources of each type are staged."""
        ...

    async def binary_resource_ids(self) -> set[str]:
        """Ids of the Binary resources the server returned as resources (already in the file)."""
        ...

    async def attachments(self, *, from_binary_id: str) -> list[StagedAttachment]:
        """Attachments whose Binary id is `from_binary_id` or after, in id order."""
        ...

    async def errors(self) -> list[dict[str, Any]]:
        """The OperationOutcomes recorded for the task, in id order."""
        ...

    async def checkpoint(self) -> str | None:
        """Packaging's saved checkpoint (JSON), if a run saved one."""
        ...

    async def save_checkpoint(self, cursor: str) -> None: ...

    async def record_error(self, outcome: dict[str, Any]) -> None:
        """Record an OperationOutcome for the error report (idempotent by its id)."""
        ...
