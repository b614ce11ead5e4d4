"""The built-in FHIR store: resources as JSONB in PostgreSQL, current version plus history.

A batch is upserted by (resourceType, id): a resource whose content is unchanged is left alone (a
re-run adds nothing); a changed one gets its version number raised, and the content it replaces
moves to `tracker_fhir_versions`, so every distinct content is kept: the current one in
`tracker_fhir_resources`, the superseded ones in `tracker_fhir_versions` (`history` reads both).
Rows are indexed by patient, type, code and date for the small read/search surface (`search`,
served as GET /fhir/{type}).

PostgreSQL cannot store U+0000 in text or jsonb, and a health system's data may hold one (a stray
byte in a note): such characters are stored as U+FFFD, the replacement character. The content
hash is of the resource as exported, so a re-run still finds it unchanged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import psycopg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ehiconnect.clock import Clock
from ehiconnect.db.database import Database, pipelined_without_flush_wait
from ehiconnect.fhir.ndjson import json_object
from ehiconnect.tracker.models import TrackerFhirResource, TrackerFhirVersion
from ehiconnect.tracker.nul_text import NUL, REPLACEMENT, replace_nul_escapes
from ehiconnect.tracker.sinks.base import Statement, TemporarySinkError, warn_malformed_lines
from ehiconnect.tracker.sinks.fields import codes_of, date_of, digest_and_json, patient_of

MAX_PAGE = 1000
# The batch's stored rows: the keys travel as one JSON parameter (binding a tuple IN list of a
# thousand parameters cost more than the query, and binding text arrays cost more than the query
# too: psycopg builds each array element by element). Sent straight to the driver, pipelined
# with the transaction's BEGIN and `db.database.NO_FLUSH_WAIT`: one round trip for the three.
_STORED = (
    "SELECT k.t, k.i, cur.content_sha256, cur.version "
    "FROM json_to_recordset(CAST(%s AS json)) AS k(t text, i text) "
    "JOIN tracker_fhir_resources cur ON cur.resource_type = k.t AND cur.resource_id = k.i"
)
# A batch's commit does not wait for its WAL flush (`NO_FLUSH_WAIT`): a crash can lose only the
# latest commits, in order, so a batch lost that way has lost its ingest checkpoint too (saved
# after it) and is written again on resume; the job's move to `ingested`, an ordinary commit,
# flushes them all.
# Changed resources: their current rows (still holding the content the lookup saw) move to the
# history; the new contents are then copied in like new rows. The count tells whether another
# writer changed one of them since the lookup.
_SUPERSEDE = text(
    "WITH k AS (SELECT * FROM json_to_recordset(CAST(:keys AS json)) AS k(t text, i text, s text)),"
    " gone AS (DELETE FROM tracker_fhir_resources cur USING k WHERE cur.resource_type = k.t "
    "AND cur.resource_id = k.i AND cur.content_sha256 = k.s "
    "RETURNING cur.resource_type, cur.resource_id, cur.content_sha256, cur.body, cur.updated_at),"
    " kept AS (INSERT INTO tracker_fhir_versions "
    "(resource_type, resource_id, content_sha256, body, recorded_at) "
    "SELECT * FROM gone ON CONFLICT DO NOTHING) "
    "SELECT count(*) FROM gone"
)
# New rows go in by binary COPY, built in `prepare`: far less work for the server than expanding
# a JSON parameter (which parsed every resource twice) or than an upsert.
_COPY = (
    "COPY tracker_fhir_resources (resource_type, resource_id, version, content_sha256, "
    "patient_id, codes, effective_date, body, updated_at) FROM STDIN (FORMAT BINARY)"
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_INT32 = struct.Struct("!i")
_FIELD_COUNT = struct.pack("!h", 9)
_NULL = _INT32.pack(-1)
_TEXT_OID = 25
_EMPTY_TEXTS = struct.pack("!iiii", 12, 0, 0, _TEXT_OID)
_JSONB_VERSION = b"\x01"
_DIGEST_SIZE = _INT32.pack(64)  # hex digits
_VERSION_1 = struct.pack("!ii", 4, 1)
_POSTGRES_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
log = logging.getLogger(__name__)
# A batch another writer raced (the same resources at once, e.g. a job retried while it still
# ran) is written again from a fresh lookup; this many times at most.
_ATTEMPTS = 5
# Lines parsed and prepared between two turns of the event loop (`prepare_lines`): ~1 ms of CPU.
_STEP = 64


class PreparedRow(NamedTuple):
    """A resource's row as binary COPY fields, split where the write adds its version (after
    `head`: type, id) and its time (after `tail`: digest, search fields, body)."""

    sha: str
    head: bytes
    tail: bytes


PreparedRows = dict[tuple[str, str], PreparedRow]  # by (type, id): a batch's last copy wins


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's rows, and how many of its lines were not a JSON object (skipped)."""

    rows: PreparedRows
    malformed: int = 0


class _Raced(Exception):
    """Another writer changed one of the batch's resources since its lookup."""


class _RowEncoder:
    """Builds a batch's prepared rows; a batch's types, patients and code lists repeat, so each
    is encoded once."""

    def __init__(self) -> None:
        self.rows: PreparedRows = {}
        self._types: dict[str, bytes] = {}
        self._patients: dict[str | None, bytes] = {}
        self._code_lists: dict[tuple[str, ...], bytes] = {}

    def add(self, resources: list[dict[str, Any]]) -> None:
        rows, types, patients, code_lists = (
            self.rows,
            self._types,
            self._patients,
            self._code_lists,
        )
        for resource in resources:
            kind, rid = resource.get("resourceType"), resource.get("id")
            if not (isinstance(kind, str) and isinstance(rid, str)):
                continue  # the platform never sends these; a foreign file might
            sha, body = digest_and_json(resource)
            patient, codes, date = patient_of(resource), codes_of(resource), date_of(resource)
            if b"\\" in body:  # only an escape can be a NUL (`\u0000`): JSON has no raw one
                body, nuls = replace_nul_escapes(body)
                if nuls:  # then the type, id or a search field may hold one too
                    kind, rid = kind.replace(NUL, REPLACEMENT), rid.replace(NUL, REPLACEMENT)
                    patient = patient.replace(NUL, REPLACEMENT) if patient else patient
                    date = date.replace(NUL, REPLACEMENT) if date else date
                    codes = [code.replace(NUL, REPLACEMENT) for code in codes]
            if (typed := types.get(kind)) is None:
                typed = types[kind] = _FIELD_COUNT + _text(kind)
            if (about := patients.get(patient)) is None:
                about = patients[patient] = _text(patient)
            if (coded := code_lists.get(coding := tuple(codes))) is None:
                coded = code_lists[coding] = _texts(codes)
            tail = b"".join(
                (
                    _DIGEST_SIZE,
                    sha.encode(),
                    about,
                    coded,
                    _text(date),
                    _INT32.pack(len(body) + 1),
                    _JSONB_VERSION,
                    body,
                )
            )
            rows[(kind, rid)] = PreparedRow(sha, typed + _text(rid), tail)

    def add_lines(self, lines: list[bytes]) -> int:
        """Parses and adds the lines' resources; the count of lines that are not a JSON object."""
        parsed = [json_object(line) for line in lines]
        self.add([resource for resource in parsed if resource is not None])
        return parsed.count(None)


class FhirStoreSink:
    """A `LineSink` and a `TransactionalSink`: ingest hands it each batch as NDJSON lines, which
    it parses and prepares itself while the batch before is written (`prepare_lines`), and the
    batch's checkpoint to commit with its rows (`write_prepared`'s `also`)."""

    name = "fhir_store"
    batching = None  # the tracker's default size (`ingest_batch_size`), as lines in file order

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        # Clear while a write has yet to send its rows: the next batch's preparation waits for
        # it, so the write's round trips before its `COPY` are answered at once, not after a slice.
        self._sent = asyncio.Event()
        self._sent.set()

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None:
        await self.write_prepared(self.prepare(resources), batch_key=batch_key)

    def prepare(self, resources: list[dict[str, Any]]) -> PreparedBatch:
        """The batch's rows, each with its digest, search fields and JSON (pure CPU work)."""
        rows = _RowEncoder()
        rows.add(resources)
        return PreparedBatch(rows.rows)

    async def prepare_lines(self, lines: list[bytes]) -> PreparedBatch:
        """The lines' rows, as `prepare` makes them from the parsed lines (a line that is not a
        JSON object is skipped and counted), `_STEP` lines per turn of the event loop, each slice
        once the write in flight has sent its `COPY`: its round trips are answered at once, and
        PostgreSQL stores that batch while this one is parsed and prepared. (Parsed ahead in one
        go, as other sinks' batches are, the next batch held the loop while the write waited for
        its lookup: a fifth of a first load, measured here.)"""
        rows = _RowEncoder()
        malformed = 0
        for start in range(0, len(lines), _STEP):
            await self._sent.wait()
            malformed += rows.add_lines(lines[start : start + _STEP])
            await asyncio.sleep(0)
        return PreparedBatch(rows.rows, malformed)

    def writes_to(self, database: object) -> bool:
        return database is self._database

    async def write_prepared(
        self, prepared: PreparedBatch, *, batch_key: str, also: Statement | None = None
    ) -> None:
        """Writes the batch in one transaction, with `also` (ingest's checkpoint) in it."""
        warn_malformed_lines(log, batch_key, prepared.malformed)
        rows = prepared.rows
        if not rows and also is None:
            return
        for attempt in range(1, _ATTEMPTS + 1):
            self._sent.clear()
            try:
                await self._write(rows, also)
                return
            except (_Raced, psycopg.errors.UniqueViolation) as exc:
                if attempt == _ATTEMPTS:
                    raise TemporarySinkError(
                        f"FHIR store batch {batch_key} kept racing another writer of the same "
                        "resources; it will be retried"
                    ) from exc
                # Seen by operators: two ingests of the same resources at once (keys only).
                log.info(
                    "FHIR store batch raced another writer; written again from a fresh lookup",
                    extra={"batch_key": batch_key, "attempt": attempt},
                )
            finally:
                self._sent.set()

    async def _write(self, rows: PreparedRows, also: Statement | None) -> None:
        stamp = struct.pack("!iq", 8, _microseconds(self._clock.now()))
        async with self._database.transaction() as session:
            keys = orjson.dumps([{"t": kind, "i": rid} for kind, rid in rows]).decode()
            async with pipelined_without_flush_wait(session) as driver:
                if also is not None:  # before the lookup: its answer is the one waited for
                    await driver.execute(also.sql, also.params)
                found = await driver.execute(_STORED, (keys,))
                stored = {
                    (kind, rid): (sha, version)
                    for kind, rid, sha, version in await found.fetchall()
                }
            parts = [_COPY_HEADER]
            changed = []
            for key, row in rows.items():
                if key not in stored:
                    parts += (row.head, _VERSION_1, row.tail, stamp)
                    continue
                sha, version = stored[key]
                if sha != row.sha:
                    changed.append({"t": key[0], "i": key[1], "s": sha})
                    parts += (row.head, struct.pack("!ii", 4, version + 1), row.tail, stamp)
            if len(parts) == 1:
                return  # a re-run: everything is stored already
            if changed:
                await _supersede(session, changed)
            parts.append(_COPY_TRAILER)
            await self._copy(driver, b"".join(parts))

    async def _copy(self, driver: psycopg.AsyncConnection[Any], data: bytes) -> None:
        async with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
            await copy.write(data)
            self._sent.set()  # PostgreSQL works on the rows now: the next batch may be prepared

    async def close(self) -> None:
        return None


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _INT32.pack(len(data)) + data


def _texts(values: list[str]) -> bytes:
    """A text[] in PostgreSQL's binary array form (one dimension, no NULLs)."""
    if not values:
        return _EMPTY_TEXTS
    parts = [struct.pack("!iiiii", 1, 0, _TEXT_OID, len(values), 1)]
    for value in values:
        data = value.encode()
        parts += (_INT32.pack(len(data)), data)
    array = b"".join(parts)
    return _INT32.pack(len(array)) + array


def _microseconds(moment: dt.datetime) -> int:
    """A timestamptz in binary form: microseconds since 2000-01-01 UTC."""
    delta = moment - _POSTGRES_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


async def _supersede(session: AsyncSession, changed: list[dict[str, str]]) -> None:
    moved = await session.scalar(_SUPERSEDE, {"keys": orjson.dumps(changed).decode()})
    if moved != len(changed):
        raise _Raced


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    patient: str | None = None
    code: str | None = None
    date_ge: str | None = None
    date_le: str | None = None
    count: int = 100
    offset: int = 0


async def search(database: Database, query: SearchQuery) -> tuple[int, list[dict[str, Any]]]:
    """The total number of matches and one page of them, oldest date first."""
    table = TrackerFhirResource
    where = [table.resource_type == query.resource_type]
    if query.patient:
        where.append(table.patient_id == query.patient.removeprefix("Patient/"))
    if query.code:
        where.append(table.codes.contains([query.code]))
    if query.date_ge:
        where.append(table.effective_date >= query.date_ge)
    if query.date_le:
        where.append(table.effective_date <= query.date_le + "\uffff")
    async with database.transaction() as session:
        total = await session.scalar(select(func.count()).select_from(table).where(*where))
        page = await session.scalars(
            select(table.body)
            .where(*where)
            .order_by(table.effective_date, table.resource_id)
            .limit(min(max(query.count, 0), MAX_PAGE))
            .offset(max(query.offset, 0))
        )
        return int(total or 0), list(page)


async def read(database: Database, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    async with database.transaction() as session:
        row = await session.get(TrackerFhirResource, (resource_type, resource_id))
        return row.body if row else None


async def history(database: Database, resource_type: str, resource_id: str) -> list[dict[str, Any]]:
    """Every distinct content kept of a resource, oldest first: those it superseded, then the
    current one (none if it was never stored)."""
    versions = TrackerFhirVersion
    async with database.transaction() as session:
        superseded = await session.scalars(
            select(versions.body)
            .where(versions.resource_type == resource_type, versions.resource_id == resource_id)
            .order_by(versions.recorded_at)
        )
        bodies = list(superseded)
        current = await session.get(TrackerFhirResource, (resource_type, resource_id))
    return [*bodies, current.body] if current else bodies


def as_searchset(total: int, resources: list[dict[str, Any]], now: dt.datetime) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": now.isoformat(),
        "total": total,
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
