"""A real PostgreSQL for the tests: one server per test session, one fresh database per test.

By default the embedded server (the same one `ehiconnect` runs) is started in a temporary
directory. Set EHICONNECT_TEST_DATABASE_URL to a server's admin URL to use that server instead.
Migrations run once into a template database; each test gets a copy (CREATE DATABASE … TEMPLATE),
which takes a few tens of milliseconds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from ehiconnect.db.embedded import ensure_embedded_postgres, stop_embedded_postgres
from ehiconnect.db.migrate import upgrade_database

TEMPLATE = "ehiconnect_template"


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (works for socket and TCP URLs)."""
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


class PostgresForTests:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def prepare_template(self) -> None:
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        upgrade_database(with_database(self.admin_url, TEMPLATE))

    def create_database(self) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE)
                )
            )
        return with_database(self.admin_url, name)

    def create_empty_database(self) -> str:
        name = f"empty_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = url.partition("?")[0].rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def postgres_for_tests(scratch: Path) -> Iterator[PostgresForTests]:
    external = os.environ.get("EHICONNECT_TEST_DATABASE_URL")
    if external:
        server = PostgresForTests(external)
        server.prepare_template()
        yield server
        return
    data_dir = scratch / "embedded"
    server = PostgresForTests(ensure_embedded_postgres(data_dir))
    try:
        server.prepare_template()
        yield server
    finally:
        stop_embedded_postgres(data_dir)
