"""The built-in FHIR store: resources as JSONB in PostgreSQL, current version plus history.

A batch is upserted by (resourceType, id): a resource whose content is unchanged is left alone (a
re-run adds nothing); a changed one gets its version number raised, and every distinct content
is kept in `tracker_fhir_versions`. Rows are indexed by patient, type, code and date for the small
read/search surface (`search`, served as GET /fhir/{type}).

PostgreSQL cannot store U+0000 in text or jsonb, and a health system's data may hold one (a stray
byte in a note): such characters are stored as U+FFFD, the replacement character. The content
hash is of the resource as exported, so a re-run still finds it unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import func, select, text

from ehiconnect.clock import Clock
from ehiconnect.db.database import Database
from ehiconnect.tracker.models import TrackerFhirResource
from ehiconnect.tracker.nul_text import NUL, REPLACEMENT, replace_nul_escapes
from ehiconnect.tracker.sinks.fields import codes_of, content_sha256, date_of, patient_of

MAX_PAGE = 1000
# The batch's stored, unchanged resources: the keys and digests travel as one JSON parameter
# (binding a tuple IN list of a thousand parameters cost more than the query, and binding three
# text arrays cost more than the query too: psycopg builds each array element by element).
_UNCHANGED = text(
    "SELECT k.t, k.i FROM json_to_recordset(CAST(:keys AS json)) AS k(t text, i text, s text) "
    "JOIN tracker_fhir_resources cur ON cur.resource_type = k.t "
    "AND cur.resource_id = k.i AND cur.content_sha256 = k.s"
)
# A batch's commit does not wait for its WAL flush: a crash can lose only the latest commits, in
# order, so a batch lost that way has lost its ingest checkpoint too (saved after it) and is
# written again on resume; the job's move to `ingested`, an ordinary commit, flushes them all.
_NO_FLUSH_WAIT = text("SET LOCAL synchronous_commit = off")
# Versions and current rows in one statement: the JSON parameter is sent and expanded once (far
# faster than row binds). Two statements on two connections at once, one per table, measured
# slower here: each parsed the batch's JSON, and on two busy cores they only took turns.
_WRITE = text(
    "WITH r AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
    "AS r(resource_type text, resource_id text, content_sha256 text, patient_id text, "
    "codes text[], effective_date text, body jsonb)), "
    "versions AS (INSERT INTO tracker_fhir_versions "
    "(resource_type, resource_id, content_sha256, body, recorded_at) "
    "SELECT r.resource_type, r.resource_id, r.content_sha256, r.body, :now FROM r "
    "ON CONFLICT DO NOTHING) "
    "INSERT INTO tracker_fhir_resources AS cur (resource_type, resource_id, version, "
    "content_sha256, patient_id, codes, effective_date, body, updated_at) "
    "SELECT r.resource_type, r.resource_id, 1, r.content_sha256, r.patient_id, r.codes, "
    "r.effective_date, r.body, :now FROM r "
    "ON CONFLICT (resource_type, resource_id) DO UPDATE SET version = cur.version + 1, "
    "content_sha256 = EXCLUDED.content_sha256, patient_id = EXCLUDED.patient_id, "
    "codes = EXCLUDED.codes, effective_date = EXCLUDED.effective_date, body = EXCLUDED.body, "
    "updated_at = EXCLUDED.updated_at "
    "WHERE cur.content_sha256 IS DISTINCT FROM EXCLUDED.content_sha256"
)


class PreparedRow(NamedTuple):
    """A resource's row as the write sends it: its content digest and its JSON."""

    sha: str
    json: bytes


PreparedRows = dict[tuple[str, str], PreparedRow]  # by (type, id): a batch's last copy wins


class FhirStoreSink:
    name = "fhir_store"
    batching = None  # the tracker's default, in file order

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def write_batch(self, resources: list[dict[str, Any]], *, batch_key: str) -> None:
        await self.write_prepared(self.prepare(resources), batch_key=batch_key)

    def prepare(self, resources: list[dict[str, Any]]) -> PreparedRows:
        """The batch's rows, each with its search fields, digest and JSON (pure CPU work: ingest
        runs it for the next batch while PostgreSQL writes this one)."""
        rows: dict[tuple[str, str], PreparedRow] = {}
        for resource in resources:
            kind, rid = resource.get("resourceType"), resource.get("id")
            if not (isinstance(kind, str) and isinstance(rid, str)):
                continue  # the platform never sends these; a foreign file might
            kind, rid = kind.replace(NUL, REPLACEMENT), rid.replace(NUL, REPLACEMENT)
            sha = content_sha256(resource)
            row = {
                "resource_type": kind,
                "resource_id": rid,
                "content_sha256": sha,
                "patient_id": patient_of(resource),
                "codes": codes_of(resource),
                "effective_date": date_of(resource),
                "body": resource,
            }
            rows[(kind, rid)] = PreparedRow(sha, orjson.dumps(row))
        return rows

    async def write_prepared(self, rows: PreparedRows, *, batch_key: str) -> None:
        if not rows:
            return
        now = self._clock.now()
        async with self._database.transaction() as session:
            await session.execute(_NO_FLUSH_WAIT)
            keys = [{"t": kind, "i": rid, "s": row.sha} for (kind, rid), row in rows.items()]
            known = await session.execute(_UNCHANGED, {"keys": orjson.dumps(keys).decode()})
            unchanged = {(kind, rid) for kind, rid in known}
            values = [row.json for key, row in rows.items() if key not in unchanged]
            if not values:
                return  # a re-run: everything is stored already
            payload = replace_nul_escapes(b"[" + b",".join(values) + b"]")[0].decode()
            await session.execute(_WRITE, {"rows": payload, "now": now})

    async def close(self) -> None:
        return None


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


def as_searchset(total: int, resources: list[dict[str, Any]], now: dt.datetime) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": now.isoformat(),
        "total": total,
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
