"""The command line against a real database: organizations, keys stored hashed, rotation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ehiconnect.ids import hash_secret


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ehiconnect", *args],
        env=env,
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


def test_orgs_create_prints_key_pairs_and_stores_only_hashes(
    env: dict[str, str], database_url: str
) -> None:
    result = _cli(
        env,
        "orgs", "create", "--name", "Acme Health",
        "--redirect-uri", "https://app.acme.example/connected",
        "--origin", "https://app.acme.example",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"org_id", "name", "test", "live"}
    for mode in ("test", "live"):
        assert created[mode]["public_id"].startswith(f"public_{mode}_")
        assert created[mode]["private_key"].startswith(f"private_{mode}_")

    with psycopg.connect(database_url) as conn:
        dump = str(conn.execute("SELECT * FROM api_keys").fetchall())
        hashes = {row[0] for row in conn.execute("SELECT secret_hash FROM api_keys").fetchall()}
    for mode in ("test", "live"):
        private_key = created[mode]["private_key"]
        assert private_key not in dump
        assert hash_secret(private_key) in hashes
    assert "private_test_" not in result.stderr

    listed = _cli(env, "orgs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["org_id"] == created["org_id"]
    assert row["public_ids"] == {m: created[m]["public_id"] for m in ("test", "live")}
    assert row["redirect_uris"] == ["https://app.acme.example/connected"]
    assert row["origins"] == ["https://app.acme.example"]
    assert "private_" not in listed.stdout


def test_keys_rotate_keeps_public_id(env: dict[str, str]) -> None:
    created = json.loads(_cli(env, "orgs", "create", "--name", "R", "--json").stdout)
    result = _cli(
        env, "keys", "rotate", "--org", created["org_id"], "--mode", "live", "--grace-hours", "2",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rotated = json.loads(result.stdout)
    assert rotated["public_id"] == created["live"]["public_id"]
    assert rotated["private_key"] != created["live"]["private_key"]
    assert rotated["grace_hours"] == 2


def test_bad_input_gets_a_clear_message(env: dict[str, str]) -> None:
    bad_uri = _cli(env, "orgs", "create", "--name", "X", "--redirect-uri", "http://evil.example/cb")
    assert bad_uri.returncode == 1
    assert "must use https" in bad_uri.stderr
    unknown = _cli(env, "keys", "rotate", "--org", "nope", "--mode", "test")
    assert unknown.returncode == 1
    assert "no organization has id nope" in unknown.stderr
