"""The sink port: a named destination that takes batches of FHIR resources.

`write_batch` must be idempotent: ingestion is at-least-once (a worker may die after a sink wrote
a batch but before the checkpoint was saved), so the same batch may arrive again. `batch_key`
names the batch stably across such re-runs (job, file, first line).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, LiteralString, Protocol, runtime_checkable


class SinkError(Exception):
    """A sink could not take a batch; the message says what to fix."""


class TemporarySinkError(SinkError):
    """The destination is unavailable or overloaded: retry the batch later."""


@dataclass(frozen=True)
class Batching:
    """How a sink wants its batches cut.

    `references_first`: a resource must reach the sink in the same batch as the resources it
    references, or after them (FHIR servers that check references); batches are then planned
    from the whole file (`sinks.ordering`) instead of cut in file order.
    `lines`: the sink parses the file itself (`LineSink`): batches are its non-blank lines, in
    file order, unparsed; a checkpoint then counts lines, a malformed one included.
    """

    max_count: int
    max_bytes: int
    references_first: bool = False
    lines: bool = False

    def __post_init__(self) -> None:
        if self.max_count < 1 or self.max_bytes < 1:
            raise ValueError("a batch must be allowed at least one resource and one byte")
        if self.lines and self.references_first:
            raise ValueError("a batch of lines is cut in file order, not references first")

    @property
    def signature(self) -> str:
        """Names the cut: a checkpoint counts resources in batches cut this way only."""
        order = "references-first" if self.references_first else "file-order"
        if self.lines:
            order = "file-lines"
        return f"{order}:{self.max_count}:{self.max_bytes}"


class Sink(Protocol):
    name: str

    @property
    def batching(self) -> Batching | None:
        """None: the tracker's `ingest_batch_size` / `ingest_batch_bytes`, in file order."""

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class PreparingSink(Sink, Protocol):
    """A sink whose CPU work on a batch can run ahead of its writing: ingest calls `prepare` on
    the next batch while `write_prepared` still waits on the destination with this one, so the
    two overlap. `write_batch(resources)` must equal `write_prepared(prepare(resources))`."""

    def prepare(self, resources: list[dict[str, Any]]) -> Any: ...

    async def write_prepared(self, prepared: Any, *, batch_key: str) -> None: ...


@runtime_checkable
class LineSink(Sink, Protocol):
    """A sink that parses NDJSON itself (its `batching.lines` is set, or it takes the tracker's
    default batching, which is then lines): ingest calls `prepare_lines` on the next batch of
    lines (bytes without the newline, blank lines left out) while `write_prepared` writes this
    one; a coroutine function `prepare_lines` is awaited, and may give way to the event loop as
    it goes so that the write goes on meanwhile. A prepared batch with a `malformed` count (lines
    that were not a resource, skipped) has them left out of the resources ingest counts as
    written. `write_batch(resources)` must equal
    `write_prepared(prepare_lines([orjson.dumps(r) for r in resources]))`."""

    def prepare_lines(self, lines: list[bytes]) -> Any: ...

    async def write_prepared(self, prepared: Any, *, batch_key: str) -> None: ...


@dataclass(frozen=True)
class Statement:
    """SQL, with psycopg's `%(name)s` parameters, for a sink to run in a batch's transaction."""

    sql: LiteralString
    params: Mapping[str, Any]


@runtime_checkable
class TransactionalSink(PreparingSink, Protocol):
    """A preparing sink that writes into a PostgreSQL database in one transaction per batch.
    When that is the tracker's own database (`writes_to`), ingest hands `write_prepared` the
    batch's checkpoint (`also`), which the sink runs in the batch's transaction: the batch and
    its checkpoint commit together (or neither does), and the checkpoint costs no transaction
    of its own. A batch retried in a new transaction runs `also` again."""

    def writes_to(self, database: object) -> bool: ...

    async def write_prepared(
        self, prepared: Any, *, batch_key: str, also: Statement | None = None
    ) -> None: ...


def warn_malformed_lines(log: logging.Logger, batch_key: str, count: int) -> None:
    """A line sink's report of the lines it skipped (never their content), when it skipped any."""
    if count:
        log.warning("malformed NDJSON lines skipped", extra={"batch": batch_key, "count": count})
