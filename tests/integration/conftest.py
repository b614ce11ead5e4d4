"""Integration fixtures: a real PostgreSQL, the runtime, and the API on a loopback port."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ehiconnect.api.app import create_app
from ehiconnect.orgs.service import CreatedOrg, create_org
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.support.database import PostgresForTests, postgres_for_tests


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    # Outside pytest's basetemp: concurrent pytest runs rotate those directories away.
    scratch = Path(tempfile.mkdtemp(prefix="ehiconnect-pg-"))
    try:
        with postgres_for_tests(scratch) as server:
            yield server
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def database_url(postgres: PostgresForTests) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings) as opened:
        yield opened


@pytest.fixture
def api(settings: Settings) -> Iterator[ThreadedServer]:
    """The platform API served over real HTTP on a loopback port."""
    with serve_in_thread(create_app(settings)) as server:
        yield server


@pytest.fixture
def http(api: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=10) as client:
        yield client


async def make_org(runtime: Runtime, name: str = "Acme Health", **kwargs: object) -> CreatedOrg:
    async with runtime.database.transaction() as session:
        return await create_org(session, runtime.clock, name=name, **kwargs)  # type: ignore[arg-type]
