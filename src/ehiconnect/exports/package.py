"""Assemble the staging area into the export's NDJSON file (and its error report).

Resources stream from the database a batch at a time and attachments from their blobs a chunk at
a time, base64-encoded on the fly into inline `Binary` lines, so memory stays flat whatever the
export's size. The Patient comes first, then the organizations, locations, clinicians and
medications others refer to, then every other type in (type, id) order.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import select

from ehiconnect.db.database import Database
from ehiconnect.exports import staging
from ehiconnect.exports.models import ExportAttachment, ExportError
from ehiconnect.exports.storage.port import BlobStore
from ehiconnect.fhir.binary import awrite_binary
from ehiconnect.fhir.ndjson import AsyncNdjsonWriter

LEADING_TYPES = (
    "Patient",
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Medication",
)


@dataclass(frozen=True)
class PackagedFile:
    key: str
    size: int
    sha256: str
    total_resources: int
    by_resource_type: dict[str, int]


async def package_export(
    database: Database, blobs: BlobStore, task_id: str, key: str
) -> PackagedFile:
    async with blobs.open_writer(key) as sink:
        # The blob writer hashes what it stores: the NDJSON writer need not hash it too.
        writer = AsyncNdjsonWriter(sink, digest=False)
        # Staged bodies are already compact JSON: written as they are, not parsed again.
        # The patient and what many resources point at come first, so a consumer that loads the
        # file in order (e.g. into a FHIR server, in batches) meets referenced resources early.
        for first in LEADING_TYPES:
            async for resource_type, resource_id, body in staging.iter_items(
                database, task_id, types=frozenset({first})
            ):
                await writer.write_line_parts(resource_type, resource_id, (body, b"\n"))
        async for resource_type, resource_id, body in staging.iter_items(database, task_id):
            if resource_type not in LEADING_TYPES:
                await writer.write_line_parts(resource_type, resource_id, (body, b"\n"))
        async with database.transaction() as session:
            attachments = list(
                await session.scalars(
                    select(ExportAttachment)
                    .where(ExportAttachment.task_id == task_id, ExportAttachment.done.is_(True))
                    .order_by(ExportAttachment.binary_id)
                )
            )
        for attachment in attachments:
            if attachment.blob_key is None:
                continue
            await awrite_binary(
                writer,
                attachment.binary_id,
                attachment.content_type,
                attachment.source_url,
                blobs.open_reader(attachment.blob_key),
            )
        stats = await writer.flush()
    stored = sink.stored
    return PackagedFile(
        key=key,
        size=stored.size,
        sha256=stored.sha256,
        total_resources=stats.total_resources,
        by_resource_type=dict(stats.by_resource_type),
    )


async def package_errors(
    database: Database, blobs: BlobStore, task_id: str, key: str
) -> tuple[int, int]:
    """The error report as NDJSON of OperationOutcomes; (count, size), (0, 0) when clean."""
    async with database.transaction() as session:
        outcomes = list(
            await session.scalars(
                select(ExportError.outcome)
                .where(ExportError.task_id == task_id)
                .order_by(ExportError.error_id)
            )
        )
    if not outcomes:
        return 0, 0
    async with blobs.open_writer(key) as sink:
        for outcome in outcomes:
            await sink.write(orjson.dumps(outcome) + b"\n")
    return len(outcomes), sink.stored.size
