"""The tracker's own migration history (version table `tracker_alembic_version`).

A fresh database gets the tracker's tables, as its models describe them, and what the tracker
uses without owning (the task queue's schema, the console's account tables), and nothing of the
platform's. A database where the platform's old migrations (0005_tracker, 0006_ingest_batching)
made the tracker's tables keeps them and every row in them. Either product may start first on a
shared database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine

from ehiconnect.consolekit.models import ConsoleSession, ConsoleUser
from ehiconnect.db.migrate import head_revision, upgrade_database
from ehiconnect.db.urls import to_sqlalchemy_url
from ehiconnect.schema import Base as PlatformBase
from ehiconnect.tracker.migrate import TRACKER_MIGRATIONS, VERSION_TABLE, upgrade_tracker_database
from ehiconnect.tracker.models import TrackerBase
from tests.support.database import PostgresForTests

pytestmark = pytest.mark.integration

OLD_CHAIN_TABLES = Path(__file__).with_name("old_chain_tables.sql")
SHARED_TABLES = {"console_users", "console_sessions", "procrastinate_jobs"}
AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}


def _differences(url: str, metadata: MetaData, version_table: str) -> list[Any]:
    """What autogenerate would change to make the database match `metadata` (its tables only)."""

    def listed(obj: object, name: str | None, kind: str, reflected: bool, other: object) -> bool:
        table = getattr(obj, "table", obj)
        return (getattr(table, "name", name) or "") in metadata.tables

    engine = create_engine(to_sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_object": listed,
                    "version_table": version_table,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _tracker_metadata() -> MetaData:
    """The tracker's models and the console kit's tables its console signs in with."""
    expected = MetaData()
    console = ConsoleUser.metadata.tables
    for table in (
        *TrackerBase.metadata.tables.values(),
        console[ConsoleUser.__tablename__],
        console[ConsoleSession.__tablename__],  # after the table its key refers to
    ):
        table.to_metadata(expected)
    return expected


def _platform_metadata() -> MetaData:
    return PlatformBase.metadata


@pytest.fixture
def empty_database(postgres: PostgresForTests) -> Iterator[str]:
    url = postgres.create_empty_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def platform_database(postgres: PostgresForTests) -> Iterator[str]:
    """A database the platform's migrations brought to their head (no tracker table now)."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


def test_a_fresh_database_gets_the_tracker_tables_and_nothing_of_the_platform(
    empty_database: str,
) -> None:
    assert upgrade_tracker_database(empty_database) == TRACKER_MIGRATIONS.head()
    tables = _tables(empty_database)
    assert set(TrackerBase.metadata.tables) | SHARED_TABLES | {VERSION_TABLE} <= tables
    assert not {"alembic_version", "organizations", "export_tasks"} & tables
    assert _differences(empty_database, _tracker_metadata(), VERSION_TABLE) == []
    # A second start finds nothing to do.
    assert upgrade_tracker_database(empty_database) == TRACKER_MIGRATIONS.head()


def test_the_platform_starts_on_a_database_the_tracker_started_first(empty_database: str) -> None:
    """The queue's schema and the console's tables exist already: the platform adopts them."""
    upgrade_tracker_database(empty_database)
    assert upgrade_database(empty_database) == head_revision()
    assert _differences(empty_database, _platform_metadata(), "alembic_version") == []
    assert _differences(empty_database, _tracker_metadata(), VERSION_TABLE) == []


def _old_chain_rows(url: str, *, drop_batching: bool = False) -> None:
    """The tracker's tables as the platform's old migrations made them, with rows in them."""
    with psycopg.connect(url) as conn:
        conn.execute(OLD_CHAIN_TABLES.read_text())
        if drop_batching:  # a database the old chain left at 0005_tracker
            conn.execute("ALTER TABLE tracker_ingest_progress DROP COLUMN batching")
        conn.execute(
            "INSERT INTO tracker_consents (kind, event_type, org_connection_id, received_at)"
            " VALUES ('widget', 'widget.complete', 'conn-1', %s), "
            "('confirmed', 'org_connection', 'conn-1', %s)",
            (AT, AT),
        )
        conn.execute(
            "INSERT INTO tracker_jobs (job_id, org_connection_id, state, task_id, attempts,"
            " export_requests, download_links, files, stats, created_at, updated_at)"
            " VALUES ('job-1', 'conn-1', 'ingested', 'task-1', '{}', 1, '[]', '[]',"
            " '{\"resources\": 12}', %s, %s)",
            (AT, AT),
        )
        conn.execute(
            "INSERT INTO tracker_ingest_progress (job_id, sink, file_key, lines_done, finished)"
            " VALUES ('job-1', 'fhir_store', 'files/1.ndjson', 12, true)"
        )
        conn.execute(
            "INSERT INTO tracker_fhir_resources (resource_type, resource_id, version,"
            " content_sha256, codes, body, updated_at)"
            " VALUES ('Patient', 'p1', 1, %s, '{}', '{\"resourceType\": \"Patient\"}', %s)",
            ("0" * 64, AT),
        )
        conn.execute(
            "INSERT INTO console_users (user_id, realm, email, password_hash, role,"
            " failed_logins, created_at)"
            " VALUES ('u1', 'tracker', 'ops@acme.test', 'argon2-hash', 'operator', 0, %s)",
            (AT,),
        )


def _kept_rows(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        return {
            "consents": conn.execute(
                "SELECT entry_id, kind FROM tracker_consents ORDER BY entry_id"
            ).fetchall(),
            "jobs": conn.execute("SELECT job_id, state, stats FROM tracker_jobs").fetchall(),
            "progress": conn.execute(
                "SELECT job_id, lines_done, finished FROM tracker_ingest_progress"
            ).fetchall(),
            "resources": conn.execute(
                "SELECT resource_type, resource_id FROM tracker_fhir_resources"
            ).fetchall(),
            "accounts": conn.execute("SELECT realm, email FROM console_users").fetchall(),
        }


EXPECTED_ROWS = {
    "consents": [(1, "widget"), (2, "confirmed")],
    "jobs": [("job-1", "ingested", {"resources": 12})],
    "progress": [("job-1", 12, True)],
    "resources": [("Patient", "p1")],
    "accounts": [("tracker", "ops@acme.test")],
}


def test_tables_the_old_platform_chain_made_are_adopted_with_every_row(
    platform_database: str,
) -> None:
    _old_chain_rows(platform_database)
    assert upgrade_tracker_database(platform_database) == TRACKER_MIGRATIONS.head()
    assert _kept_rows(platform_database) == EXPECTED_ROWS
    assert _differences(platform_database, _tracker_metadata(), VERSION_TABLE) == []
    with psycopg.connect(platform_database) as conn:  # the log's identity goes on counting
        entry = conn.execute(
            "INSERT INTO tracker_consents (kind, event_type, org_connection_id, received_at)"
            " VALUES ('revoked', 'patient.authorization_revoked', 'conn-1', %s)"
            " RETURNING entry_id",
            (AT,),
        ).fetchone()
    assert entry == (3,)
    # The platform's schema is untouched by it: still at its head, still its models.
    assert upgrade_database(platform_database) == head_revision()
    assert _differences(platform_database, _platform_metadata(), "alembic_version") == []


def test_tables_from_before_the_batching_column_get_it(platform_database: str) -> None:
    _old_chain_rows(platform_database, drop_batching=True)
    upgrade_tracker_database(platform_database)
    assert _kept_rows(platform_database) == EXPECTED_ROWS
    assert _differences(platform_database, _tracker_metadata(), VERSION_TABLE) == []
    with psycopg.connect(platform_database) as conn:
        batching = conn.execute("SELECT batching FROM tracker_ingest_progress").fetchall()
    assert batching == [(None,)]


def test_the_fhir_store_history_keeps_only_superseded_contents(empty_database: str) -> None:
    """A store written before tracker_0002 held each current content in its history too."""
    assert upgrade_tracker_database(empty_database, "tracker_0001") == "tracker_0001"
    older, newer = "a" * 64, "b" * 64
    with psycopg.connect(empty_database) as conn:
        conn.execute(
            "INSERT INTO tracker_fhir_resources (resource_type, resource_id, version,"
            " content_sha256, codes, body, updated_at)"
            " VALUES ('Observation', 'o1', 2, %s, '{}', '{\"status\": \"amended\"}', %s)",
            (newer, AT),
        )
        conn.execute(
            "INSERT INTO tracker_fhir_versions (resource_type, resource_id, content_sha256,"
            " body, recorded_at) VALUES ('Observation', 'o1', %s, '{\"status\": \"final\"}', %s),"
            " ('Observation', 'o1', %s, '{\"status\": \"amended\"}', %s)",
            (older, AT - dt.timedelta(days=1), newer, AT),
        )
    assert upgrade_tracker_database(empty_database) == TRACKER_MIGRATIONS.head()
    with psycopg.connect(empty_database) as conn:
        history = conn.execute("SELECT content_sha256, body FROM tracker_fhir_versions").fetchall()
        current = conn.execute("SELECT version, body FROM tracker_fhir_resources").fetchall()
    assert history == [(older, {"status": "final"})]
    assert current == [(2, {"status": "amended"})]
