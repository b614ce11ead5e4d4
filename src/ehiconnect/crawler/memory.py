"""In-memory ports for running the real crawl engine without a network or a database.

For unit tests and demos of crawl logic (`tests/unit/crawler`), like `storage.memory` for blobs;
nothing here persists. `MemoryFhirSource` is a health system held in dicts, `MemoryStaging` an
export's staging area held in dicts, and both record what was asked of them, so a test can say
what was fetched and staged, and how often.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from ehiconnect.crawler.ports import AttachmentSink, Checkpoint, FetchError


@dataclass(frozen=True)
class MemoryAttachment:
    """An attachment as the source serves it."""

    content_type: str
    body: bytes


class MemoryFhirSource:
    """A FHIR server in dicts, keyed by absolute URL (relative keys resolve against `base_url`).

    `failures` answer a URL with an HTTP status (a `FetchError`, as a session gives after its
    retries) or raise an exception as it is (what a session raises besides: the deadline, a
    refresh refused, the worker dying). Any other URL not held is a 404. `requests` lists every
    URL answered, in order; a request is suspended once before its answer, so the crawl's other
    work runs meanwhile, as it would over a network.
    """

    def __init__(
        self,
        base_url: str,
        *,
        resources: Mapping[str, dict[str, Any]] | None = None,
        attachments: Mapping[str, MemoryAttachment] | None = None,
        failures: Mapping[str, int | BaseException] | None = None,
        chunk_size: int = 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.resources = {self.absolute(u): r for u, r in (resources or {}).items()}
        self.attachments = {self.absolute(u): a for u, a in (attachments or {}).items()}
        self.failures = {self.absolute(u): f for u, f in (failures or {}).items()}
        self.chunk_size = chunk_size
        self.requests: list[str] = []

    def absolute(self, url: str) -> str:
        return urljoin(self.base_url, url)

    async def get_json(self, url: str) -> dict[str, Any]:
        target = await self._answer(url)
        if target not in self.resources:
            raise FetchError(target, 404, "HTTP 404")
        return copy.deepcopy(self.resources[target])

    async def download(self, url: str, sink: AttachmentSink) -> str | FetchError:
        try:
            target = await self._answer(url)
        except FetchError as failure:
            return failure
        attachment = self.attachments.get(target)
        if attachment is None:
            return FetchError(target, 404, "HTTP 404")
        body = attachment.body
        await sink.begin(attachment.content_type, len(body))
        for start in range(0, len(body), self.chunk_size):
            await sink.write(body[start : start + self.chunk_size])
        return attachment.content_type

    async def _answer(self, url: str) -> str:
        """The absolute URL once answered; raises the failure set for it."""
        target = self.absolute(url)
        await asyncio.sleep(0)
        self.requests.append(target)
        failure = self.failures.get(target)
        if isinstance(failure, int):
            raise FetchError(target, failure, f"HTTP {failure}")
        if failure is not None:
            raise failure
        return target


@dataclass(frozen=True)
class StagedAttachment:
    """An attachment the crawl recorded: its bytes (`done`), or left to packaging."""

    source_url: str
    content_type: str | None
    body: bytes | None
    size: int | None
    done: bool


class MemoryStaging:
    """An export's staging area in dicts (`crawler.ports.CrawlStaging`).

    `offered` counts how many times each resource (type, id) was handed over to be staged,
    new or not: a crawl that fetched nothing twice offers each resource once.
    """

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.offered: Counter[tuple[str, str]] = Counter()
        self.steps: dict[str, Checkpoint] = {}
        self.errors: dict[str, dict[str, Any]] = {}  # by OperationOutcome id
        self.attachments: dict[str, StagedAttachment] = {}

    async def checkpoints(self) -> dict[str, Checkpoint]:
        return dict(self.steps)

    async def recorded_attachments(self) -> dict[str, bool]:
        return {binary_id: a.done for binary_id, a in self.attachments.items()}

    async def staged_resources(self) -> AsyncIterator[dict[str, Any]]:
        for key in sorted(self.resources):
            yield copy.deepcopy(self.resources[key])

    async def stage_resources(self, resources: Sequence[dict[str, Any]]) -> int:
        added = 0
        for resource in resources:
            if not (resource.get("resourceType") and resource.get("id")):
                continue
            key = (str(resource["resourceType"]), str(resource["id"]))
            self.offered[key] += 1
            if key not in self.resources:
                self.resources[key] = copy.deepcopy(resource)
                added += 1
        return added

    async def stage_page(
        self, step: str, resources: Sequence[dict[str, Any]], *, next_url: str | None
    ) -> int:
        added = await self.stage_resources(resources)
        self.steps[step] = Checkpoint(cursor=next_url, done=next_url is None)
        return added

    async def record_failure(self, step: str, outcome: dict[str, Any]) -> None:
        self.errors.setdefault(str(outcome["id"]), outcome)
        self.steps[step] = Checkpoint(cursor=None, done=True)

    async def stage_attachment(
        self, binary_id: str, *, source_url: str, content_type: str, chunks: Sequence[bytes]
    ) -> int:
        body = b"".join(chunks)
        self.attachments[binary_id] = StagedAttachment(
            source_url, content_type, body, len(body), done=True
        )
        return len(body)

    async def defer_attachment(
        self, binary_id: str, *, source_url: str, content_type: str | None, size: int | None
    ) -> None:
        self.attachments[binary_id] = StagedAttachment(
            source_url, content_type, None, size, done=False
        )
