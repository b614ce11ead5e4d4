"""`ehiconnect console ...` against a real database: accounts the console then accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ehiconnect.consolekit.passwords import verify_password


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ehiconnect", "console", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "EHICONNECT_DATABASE_URL": database_url,
        "EHICONNECT_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }


def test_add_user_stores_an_argon2_hash_and_refuses_bad_requests(
    env: dict[str, str], database_url: str
) -> None:
    made = cli(
        env,
        "add-user",
        "Ops@Example.org",
        "--operator",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert made.returncode == 0, made.stderr
    with psycopg.connect(database_url) as conn:
        [(email, role, org_id, stored)] = conn.execute(
            "SELECT email, role, org_id, password_hash FROM console_users"
        ).fetchall()
    assert (email, role, org_id) == ("ops@example.org", "operator", None)
    assert stored.startswith("$argon2id$")
    assert "a long enough password" not in stored
    assert verify_password(stored, "a long enough password")

    both = cli(
        env,
        "add-user",
        "x@example.org",
        "--operator",
        "--org",
        "o",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert both.returncode == 2
    unknown_org = cli(
        env,
        "add-user",
        "x@example.org",
        "--org",
        "no-such-org",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert unknown_org.returncode == 1
    assert "no organization" in unknown_org.stderr
    short = cli(env, "add-user", "y@example.org", "--operator", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert "12 characters" in short.stderr
    again = cli(
        env,
        "add-user",
        "ops@example.org",
        "--operator",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert again.returncode == 1
    listed = cli(env, "users", "--json")
    assert [u["email"] for u in json.loads(listed.stdout)] == ["ops@example.org"]
