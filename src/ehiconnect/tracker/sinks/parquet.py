"""Parquet per resource type, readable by DuckDB (`read_parquet('<dir>/Observation/*.parquet')`).

Each batch is written as one file per resource type, named after the batch
(`<dir>/<Type>/<batch_key>.parquet`, the key starting with the job id) and replaced
atomically: writing a batch again replaces its files, so a re-run adds nothing. Each export is a
whole snapshot of the patient's record, so once a newer export of the same connection is in, the
ingest step deletes the older exports' files (`forget_jobs`): the dataset holds each resource of
a connection once, as of its latest export. Columns are fixed for every type (id, patient_id,
codes, date, last_updated, and the resource as JSON text), so all files of a type read as one
table; DuckDB's JSON functions reach any other field.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from ehiconnect.tracker.sinks.fields import codes_of, date_of, patient_of

SCHEMA = pa.schema(
    [
        ("resource_type", pa.string()),
        ("id", pa.string()),
        ("patient_id", pa.string()),
        ("codes", pa.list_(pa.string())),
        ("date", pa.string()),
        ("last_updated", pa.string()),
        ("resource", pa.string()),
    ]
)
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class ParquetSink:
    name = "parquet"
    batching = None  # the tracker's default, in file order

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None:
        if not _SAFE.match(batch_key):
            raise ValueError(f"batch key {batch_key!r} is not a safe file name")
        await asyncio.to_thread(self._write, resources, batch_key)

    def _write(self, resources: list[dict[str, Any]], batch_key: str) -> None:
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for resource in resources:
            kind = resource.get("resourceType")
            if isinstance(kind, str) and _SAFE.match(kind) and isinstance(resource.get("id"), str):
                by_type[kind].append(resource)
        for kind, items in by_type.items():
            meta: list[dict[str, Any]] = [_meta(r) for r in items]
            table = pa.table(
                {
                    "resource_type": [kind] * len(items),
                    "id": [r["id"] for r in items],
                    "patient_id": [patient_of(r) for r in items],
                    "codes": [codes_of(r) for r in items],
                    "date": [date_of(r) for r in items],
                    "last_updated": [m.get("lastUpdated") for m in meta],
                    "resource": [orjson.dumps(r).decode() for r in items],
                },
                schema=SCHEMA,
            )
            folder = self.directory / kind
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{batch_key}.parquet"
            temporary = folder / f".{batch_key}.parquet.tmp"
            pq.write_table(table, temporary, compression="zstd")
            os.replace(temporary, target)

    async def forget_jobs(self, job_ids: list[str]) -> int:
        """Delete the files written for these jobs (superseded snapshots); how many went."""
        return await asyncio.to_thread(self._forget, job_ids)

    def _forget(self, job_ids: list[str]) -> int:
        removed = 0
        for job_id in job_ids:
            if not _SAFE.match(job_id):
                raise ValueError(f"job id {job_id!r} is not a safe file name")
            for path in self.directory.glob(f"*/{job_id}-*.parquet"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def close(self) -> None:
        return None


def _meta(resource: dict[str, Any]) -> dict[str, Any]:
    value = resource.get("meta")
    return value if isinstance(value, dict) else {}
