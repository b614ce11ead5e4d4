"""`/readyz` over real HTTP: ready, then each dependency broken in turn and named in the 503."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from ehiconnect.db.migrate import head_revision
from ehiconnect.settings import Settings
from tests.support.database import PostgresForTests

ATTEMPTS = 100  # probes 0.05 s apart: the answer is cached for about a second


def _poll_until_status(http: httpx.Client, status: int) -> httpx.Response:
    for _ in range(ATTEMPTS):
        response = http.get("/readyz")
        if response.status_code == status:
            return response
        time.sleep(0.05)
    raise AssertionError(f"/readyz never answered {status}: {response.status_code} {response.text}")


def _database_name(url: str) -> str:
    return url.partition("?")[0].rsplit("/", 1)[1]


@pytest.fixture
def refuse_connections(
    postgres: PostgresForTests, database_url: str
) -> Iterator[Callable[[], None]]:
    name = _database_name(database_url)

    def refuse() -> None:
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

    yield refuse
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_ready_lists_what_it_checked(http: httpx.Client) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "storage": "ok",
    }


def test_unreachable_database_is_named(
    http: httpx.Client, refuse_connections: Callable[[], None]
) -> None:
    assert http.get("/readyz").status_code == 200
    refuse_connections()
    response = _poll_until_status(http, 503)
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "not_ready"
    assert "database: unreachable" in body["error_description"]
    assert "storage" not in body["error_description"]  # storage still works
    assert int(response.headers["retry-after"]) > 0


def test_schema_behind_the_code_is_named(http: httpx.Client, database_url: str) -> None:
    assert http.get("/readyz").status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0008_consent_results'")
    try:
        response = _poll_until_status(http, 503)
        description = response.json()["error_description"]
        assert "migrations: the schema is at 0008_consent_results" in description
        assert str(head_revision()) in description
        assert "database: unreachable" not in description
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (head_revision(),))
    _poll_until_status(http, 200)


def test_a_schema_ahead_of_the_code_is_ready(http: httpx.Client, database_url: str) -> None:
    """During a rolling restart a newer version migrates first: older processes keep serving
    (migrations only add), instead of all leaving the load balancer at once."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_version'")
    try:
        time.sleep(1.1)  # past the shared result's lifetime
        response = http.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["data"]["checks"]["migrations"] == "ok"
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (head_revision(),))


def test_unwritable_storage_is_named(http: httpx.Client, settings: Settings) -> None:
    assert http.get("/readyz").status_code == 200
    exports = settings.data_dir / "exports"
    shutil.rmtree(exports)
    exports.write_bytes(b"")  # a lost mount: the directory is gone, a file in its place
    response = _poll_until_status(http, 503)
    description = response.json()["error_description"]
    assert description.startswith("not ready: storage: not writable")
    assert "database" not in description
    exports.unlink()
    _poll_until_status(http, 200)  # recovers by itself once storage is back
