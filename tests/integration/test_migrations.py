"""Schema migrations apply to an empty database, and concurrent starters do not collide.

These are the platform's; the tracker's own history is tested in tests/integration/tracker.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg

from ehiconnect.db.migrate import head_revision, upgrade_database
from tests.support.database import PostgresForTests

EXPECTED_TABLES = {
    "organizations",
    "api_keys",
    "org_connections",
    "audit_log",
    "procrastinate_jobs",
    "procrastinate_workers",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def test_migrations_apply_to_an_empty_database(postgres: PostgresForTests) -> None:
    url = postgres.create_empty_database()
    try:
        assert _tables(url) == set()
        assert upgrade_database(url) == head_revision()
        assert _tables(url) >= EXPECTED_TABLES
        assert {table for table in _tables(url) if table.startswith("tracker_")} == set()
        # A second start finds nothing to do.
        assert upgrade_database(url) == head_revision()
    finally:
        postgres.drop_database(url)


def test_processes_starting_together_migrate_once(postgres: PostgresForTests) -> None:
    url = postgres.create_empty_database()
    try:
        with ThreadPoolExecutor(4) as pool:
            revisions = list(pool.map(lambda _: upgrade_database(url), range(4)))
        assert revisions == [head_revision()] * 4
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert versions == [(head_revision(),)]
    finally:
        postgres.drop_database(url)


def test_models_and_migrations_agree(postgres: PostgresForTests) -> None:
    """A model changed without a migration (or the reverse) shows up here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    from ehiconnect.db.urls import to_sqlalchemy_url
    from ehiconnect.schema import Base

    url = postgres.create_database()
    engine = create_engine(to_sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_object": _not_the_queues_tables,
                },
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
        postgres.drop_database(url)
    assert differences == []


def _not_the_queues_tables(
    obj: object, name: str | None, kind: str, reflected: bool, other: object
) -> bool:
    table = getattr(obj, "table", obj)
    return not (getattr(table, "name", name) or "").startswith("procrastinate_")
