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
import logging
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from ehiconnect.tracker.sinks.base import Batching, warn_malformed_lines
from ehiconnect.tracker.sinks.parquet_rows import SCHEMA, Rows, rows_of

__all__ = ["SCHEMA", "ParquetSink"]

log = logging.getLogger(__name__)

ROWS_PER_BATCH = 10_000
BYTES_PER_BATCH = 16 * 1024 * 1024  # of NDJSON: bounds the batch held in memory

# The resource's JSON is neither dictionary-encoded nor given min/max statistics: its values are
# all distinct and never range-filtered, so both cost time (a tenth of the files' writing) for
# nothing. Ids, dates and stamps are mostly distinct too: a dictionary for them cost CPU and
# made the files larger (measured here), so only the repeating columns get one. The values and
# the schema are the same.
_SMALL_COLUMNS = [name for name in SCHEMA.names if name != "resource"]
_REPEATING_COLUMNS = ["resource_type", "patient_id", "codes"]
FILE_WRITERS = 2
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class ParquetSink:
    """A `LineSink`: ingest hands it each batch as NDJSON lines, which it reads itself
    (`parquet_rows`), the next batch while this one is written."""

    name = "parquet"

    def __init__(
        self,
        directory: Path,
        *,
        rows_per_batch: int = ROWS_PER_BATCH,
        bytes_per_batch: int = BYTES_PER_BATCH,
    ) -> None:
        self.directory = directory
        self.batching = Batching(rows_per_batch, bytes_per_batch, lines=True)
        self._folders: set[Path] = set()  # made already: a mkdir per type and batch cost a tenth

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None:
        """Resources already parsed: written as the lines orjson makes of them."""
        lines = [orjson.dumps(resource) for resource in resources]
        await self.write_prepared(self.prepare_lines(lines), batch_key=batch_key)

    def prepare_lines(self, lines: list[bytes]) -> Rows:
        return rows_of(lines)

    async def write_prepared(self, prepared: Rows, *, batch_key: str) -> None:
        if not _SAFE.match(batch_key):
            raise ValueError(f"batch key {batch_key!r} is not a safe file name")
        warn_malformed_lines(log, batch_key, prepared.malformed)
        await asyncio.to_thread(self._write, prepared.table, batch_key)

    def _write(self, table: pa.Table, batch_key: str) -> None:
        parts = [(kind, part) for kind, part in _by_type(table) if _SAFE.match(kind)]
        # Encoding and compressing a file runs outside the GIL: two types' files at once, the
        # largest first so that neither writer is left with a big one at the end.
        parts.sort(key=lambda item: item[1].num_rows, reverse=True)
        with ThreadPoolExecutor(max_workers=FILE_WRITERS) as writers:
            for written in [
                writers.submit(self._write_file, kind, part, batch_key) for kind, part in parts
            ]:
                written.result()

    def _write_file(self, kind: str, table: pa.Table, batch_key: str) -> None:
        folder = self.directory / kind
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        temporary = folder / f".{batch_key}.parquet.tmp"
        pq.write_table(
            table,
            temporary,
            compression="zstd",
            use_dictionary=_REPEATING_COLUMNS,
            write_statistics=_SMALL_COLUMNS,
        )
        os.replace(temporary, folder / f"{batch_key}.parquet")

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


def _by_type(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """The table's rows of each resource type, in file order: one stable sort, then slices."""
    kinds = table.column("resource_type")
    table = table.take(pc.sort_indices(kinds))
    start = 0
    counts = pc.value_counts(kinds).to_pylist()
    # Python orders str by code point as Arrow orders UTF-8 by byte: the sort's order
    for kind, count in sorted((c["values"], c["counts"]) for c in counts):
        yield kind, table.slice(start, count)
        start += count
