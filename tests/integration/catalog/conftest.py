"""The consent fixtures (platform + sandbox over loopback), plus helpers for catalog tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ehiconnect.settings import Settings
from tests.integration.consent.conftest import (  # noqa: F401 (fixtures used by these tests)
    api,
    browser,
    org,
    platform,
    platform_clock,
    sandbox,
    sandbox_app,
    sandbox_state,
    settings,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalog"
BUNDLE = FIXTURES / "brands-bundle.json"
PLAIN = FIXTURES / "plain-catalog.json"


def load_fixture(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@pytest.fixture
def cli_env(settings: Settings, database_url: str) -> dict[str, str]:  # noqa: F811
    """The environment that points a `python -m ehiconnect` child at this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHICONNECT_")}
    return {
        **env,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(settings.data_dir),
        "EHICONNECT_SANDBOX__BASE_URL": settings.sandbox.base_url,
        "COLUMNS": "200",
    }


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ehiconnect", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def database_dump(database_url: str) -> str:
    """Every row of every table of the public schema, as PostgreSQL prints it (bytea as hex)."""
    with psycopg.connect(database_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        parts: list[str] = []
        for table in tables:
            rows = conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()  # noqa: S608
            parts.extend(f"{table}: {row[0]}" for row in rows)
    return "\n".join(parts)
