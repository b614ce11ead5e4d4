"""What a crawl needs from the world, as ports the crawler owns.

The engine (`crawler.engine`) talks to three things, each a small Protocol here:

- `FhirSource` — the health system: GET a FHIR JSON resource or Bundle, download an attachment.
  Over HTTP it is `crawler.fetch.FhirSession`; in unit tests `crawler.memory.MemoryFhirSource`.
- `CrawlStaging` — where an export keeps what the crawl collected (resources, attachments, the
  error report) and its checkpoints, so that a crawl resumed by another worker continues where
  the first one stopped. The exports feature implements it on PostgreSQL and the blob store
  (`exports.staging.ExportStaging`); unit tests use `crawler.memory.MemoryStaging`.
- `CrawlProgress` — the phase the crawl is in and counters as they grow (the export task's row).

The crawler imports nothing from the features that use it: they implement these ports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ehiconnect.fhir.outcome import operation_outcome, outcome_for_http_failure
from ehiconnect.vocabulary import ExportPhase


class FetchError(Exception):
    """A request that failed for good; `status` is None when no response came.

    `refused`: the SSRF guard would not let the request out (nothing was sent). `issue`: the
    FHIR IssueType when it says more than the status (`too-costly`: a body past our limit).
    """

    def __init__(
        self,
        url: str,
        status: int | None,
        detail: str,
        *,
        refused: bool = False,
        issue: str | None = None,
    ) -> None:
        super().__init__(f"{url}: {detail}")
        self.url = url
        self.status = status
        self.detail = detail
        self.refused = refused
        self.issue = issue

    def outcome(self, resource_type: str | None) -> dict[str, Any]:
        """The error report's OperationOutcome for this failure."""
        if self.refused:
            # Why it was refused, never a response body: nothing was fetched.
            return operation_outcome(
                diagnostics=f"Not fetched: {self.detail}",
                code="security",
                url=self.url,
                resource_type=resource_type,
            )
        return outcome_for_http_failure(
            url=self.url,
            status=self.status,
            resource_type=resource_type,
            detail=self.detail,
            code=self.issue,
        )


class TooLarge(Exception):
    """Raised by an `AttachmentSink`: the body is larger than it takes."""


class AttachmentSink(Protocol):
    """Receives one attachment's body: `begin` (the served content type and declared length),
    the chunks, and `restart` when the body broke off and the download starts again. It may
    raise `TooLarge` from `begin` or `write` to stop the download."""

    async def begin(self, content_type: str, declared_size: int | None) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def restart(self) -> None: ...


class FhirSource(Protocol):
    """One patient's health system, as the crawl sees it. URLs are relative to `base_url` or
    absolute (a search's `next` link)."""

    @property
    def base_url(self) -> str:
        """The FHIR base, ending in `/`; references and attachment URLs resolve against it."""
        ...

    async def get_json(self, url: str) -> dict[str, Any]:
        """The JSON object at `url` (a resource, a Bundle); `FetchError` when it cannot be had."""
        ...

    async def download(self, url: str, sink: AttachmentSink) -> str | FetchError:
        """The served content type once the whole body is in `sink`, else the failure (for the
        error report). `TooLarge` from the sink propagates."""
        ...


@dataclass(frozen=True)
class Checkpoint:
    """Where one unit of work stands: a search's next page (`cursor`), or `done` (finished, or
    failed and listed in the error report: not tried again)."""

    cursor: str | None
    done: bool


class CrawlStaging(Protocol):
    """One export's staging area. Each write is atomic: a resumed crawl finds either all of it
    or none, so a page is never staged without the checkpoint that says it was."""

    async def checkpoints(self) -> dict[str, Checkpoint]:
        """Every checkpoint recorded so far, by step name (`search:<url>`, `read:<type>/<id>`,
        `attachment:<binary id>`, `everything`)."""
        ...

    async def recorded_attachments(self) -> dict[str, bool]:
        """binary id → staged (True) or left to packaging (False), for every attachment recorded."""
        ...

    def staged_resources(self) -> AsyncIterator[dict[str, Any]]:
        """Every resource staged so far (by an earlier run of this crawl)."""
        ...

    async def stage_resources(self, resources: Sequence[dict[str, Any]]) -> int:
        """Keep the resources not staged yet; how many were new. Without type or id: skipped."""
        ...

    async def stage_page(
        self, step: str, resources: Sequence[dict[str, Any]], *, next_url: str | None
    ) -> int:
        """Keep a search page's resources and, with them, the step's checkpoint: continue at
        `next_url`, or done when there is none. How many resources were new."""
        ...

    async def record_failure(self, step: str, outcome: dict[str, Any]) -> None:
        """Add `outcome` (an OperationOutcome) to the error report and mark `step` done."""
        ...

    async def stage_attachment(
        self, binary_id: str, *, source_url: str, content_type: str, chunks: Sequence[bytes]
    ) -> int:
        """Keep a downloaded attachment's bytes, recorded as staged; its size in bytes."""
        ...

    async def defer_attachment(
        self, binary_id: str, *, source_url: str, content_type: str | None, size: int | None
    ) -> None:
        """Record an attachment too large to stage: packaging downloads it, into the file."""
        ...


class CrawlProgress(Protocol):
    """Told when the crawl enters a phase and as counters grow; may raise to stop the crawl
    (the export was cancelled)."""

    async def __call__(
        self,
        *,
        phase: ExportPhase | None = None,
        resources_added: int = 0,
        attachment_bytes: int = 0,
        crawl_report: dict[str, Any] | None = None,
    ) -> None: ...
