"""The sink port: a named destination that takes batches of FHIR resources.

`write_batch` must be idempotent: ingestion is at-least-once (a worker may die after a sink wrote
a batch but before the checkpoint was saved), so the same batch may arrive again. `batch_key`
names the batch stably across such re-runs (job, file, first line).
"""

from __future__ import annotations

from typing import Any, Protocol


class SinkError(Exception):
    """A sink could not take a batch; the message says what to fix."""


class TemporarySinkError(SinkError):
    """The destination is unavailable or overloaded: retry the batch later."""


class Sink(Protocol):
    name: str

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None: ...

    async def close(self) -> None: ...
