"""Can this process serve? The checks behind `/readyz`, cached so probes cannot load the database.

    checker = ReadinessChecker(database, blobs)  # the tracker: migrations=<its own history>
    report = await checker.check()  # at most one real check per `ttl_seconds`, shared by all
    report.ready, report.checks, report.problems

Checks, run concurrently, each bounded by `timeout_seconds`:

- `database`: a connection from the pool answers, and
- `migrations`: its schema (the platform's, or the history given as `migrations`) is not behind
  this code: at the head this code expects, or at a revision this code does not know (a newer
  version migrated it during a rolling restart; migrations only add, so older code keeps working
  on it);
- `storage`: a small probe object can be written to and deleted from the export store.

`/healthz` stays the liveness probe (the process answers); a load balancer sends traffic only
where `/readyz` is 200.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from sqlalchemy import column, select, table

from ehiconnect.db.database import Database
from ehiconnect.db.migrate import PLATFORM, MigrationChain
from ehiconnect.storage.port import BlobStore

DEFAULT_TTL_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 3.0
RETRY_AFTER_SECONDS = 5
PROBE_PREFIX = "health"
UNCHECKED = "not checked (the database is unreachable)"

T = TypeVar("T")


@dataclass(frozen=True)
class ReadinessReport:
    checks: dict[str, str]
    """Check name → "ok" or what is wrong (no secret: exception types and revisions only)."""
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.problems

    def description(self) -> str:
        return "not ready: " + "; ".join(f"{name}: {self.checks[name]}" for name in self.problems)


@cache
def _expected_revision(migrations: MigrationChain) -> str | None:
    return migrations.head()  # parses the migration scripts: once per process


@cache
def _known_revisions(migrations: MigrationChain) -> frozenset[str]:
    return migrations.known()


class ReadinessChecker:
    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        migrations: MigrationChain = PLATFORM,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._database = database
        self._blobs = blobs
        self._migrations = migrations
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._lock = asyncio.Lock()
        self._last: tuple[float, ReadinessReport] | None = None

    async def check(self) -> ReadinessReport:
        async with self._lock:  # probes arriving together share one check
            if self._last is not None and time.monotonic() - self._last[0] < self._ttl:
                return self._last[1]
            report = await self._run()
            self._last = (time.monotonic(), report)
            return report

    async def _run(self) -> ReadinessReport:
        late = f"no answer within {self._timeout:g} s"
        (database, migrations), storage = await asyncio.gather(
            self._within(self._database_checks(), (late, UNCHECKED)),
            self._within(self._storage_check(), late),
        )
        checks = {"database": database, "migrations": migrations, "storage": storage}
        return ReadinessReport(checks, [name for name, state in checks.items() if state != "ok"])

    async def _within(self, check: Awaitable[T], on_timeout: T) -> T:
        try:
            return await asyncio.wait_for(check, self._timeout)
        except TimeoutError:
            return on_timeout

    async def _database_checks(self) -> tuple[str, str]:
        versions = table(self._migrations.version_table, column("version_num"))
        try:
            async with self._database.transaction() as session:
                revision = await session.scalar(select(versions.c.version_num))
        except Exception as exc:
            return f"unreachable ({type(exc).__name__})", UNCHECKED
        expected = _expected_revision(self._migrations)
        if revision != expected and revision in _known_revisions(self._migrations):
            return "ok", (
                f"the schema is at {revision}, this version expects {expected}; "
                "restart a process to apply migrations, or roll back the deploy"
            )
        return "ok", "ok"

    async def _storage_check(self) -> str:
        key = f"{PROBE_PREFIX}/readyz-{uuid.uuid4().hex}.probe"
        try:
            async with self._blobs.open_writer(key) as writer:
                await writer.write(b"ready")
            await self._blobs.delete(key)
        except Exception as exc:
            return f"not writable ({type(exc).__name__})"
        return "ok"
