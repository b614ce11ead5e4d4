"""Processes sharing one database share their secrets, or refuse to start saying what differs."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from ehiconnect.api.app import create_app
from ehiconnect.db.pools import ProcessRole
from ehiconnect.fleet import FleetSettingsMismatch
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.smart.client_keys import load_signer
from ehiconnect.testing.servers import serve_in_thread

PUBLIC = "https://ehi.example.org"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _host(
    tmp_path: Path,
    database_url: str,
    name: str,
    keys: dict[str, str] | None = None,
    active: str | None = None,
    public_base_url: str | None = PUBLIC,
) -> Settings:
    """The settings of one host: its own data directory, the fleet's database."""
    settings = Settings(data_dir=tmp_path / name, database_url=database_url)
    settings.vault.keys = {kid: SecretStr(value) for kid, value in (keys or {}).items()}
    settings.vault.active_kid = active
    settings.api.public_base_url = public_base_url
    settings.sandbox.enabled = False
    settings.exports.local_dir = tmp_path / "shared-exports"  # storage every host reaches
    return settings


async def test_hosts_that_each_made_their_own_vault_key_cannot_form_a_fleet(
    tmp_path: Path, database_url: str
) -> None:
    first = _host(tmp_path, database_url, "host-a")
    second = _host(tmp_path, database_url, "host-b")
    async with Runtime.open(first, role=ProcessRole.API):
        with pytest.raises(FleetSettingsMismatch) as refused:
            async with Runtime.open(second, role=ProcessRole.WORKER):
                pass
    message = str(refused.value)
    assert "vault.keys" in message
    assert "vault-keys.json" in message  # where this host's key came from, and what to do
    assert "EHICONNECT_VAULT__KEYS__" in message


async def test_every_api_process_publishes_the_same_signing_key(
    tmp_path: Path, database_url: str
) -> None:
    keys = {"k1": _key()}
    hosts = [_host(tmp_path, database_url, name, keys) for name in ("host-a", "host-b")]
    published = []
    with serve_in_thread(create_app(hosts[0])) as one, serve_in_thread(create_app(hosts[1])) as two:
        for server in (one, two):
            response = httpx.get(f"{server.url}/.well-known/jwks.json")
            assert response.status_code == 200
            published.append(response.json())
    assert published[0] == published[1]
    [key] = published[0]["keys"]
    assert "d" not in key


async def test_a_client_keys_file_of_an_existing_deployment_is_kept(
    tmp_path: Path, database_url: str
) -> None:
    keys = {"k1": _key()}
    first = _host(tmp_path, database_url, "host-a", keys)
    registered = load_signer(first.data_dir)  # the key a health system already knows
    async with Runtime.open(first, role=ProcessRole.API) as runtime:
        assert runtime.client_signer.public_jwks() == registered.public_jwks()
    second = _host(tmp_path, database_url, "host-b", keys)
    load_signer(second.data_dir)  # another host's stray file does not replace the fleet's key
    async with Runtime.open(second, role=ProcessRole.WORKER) as runtime:
        assert runtime.client_signer.kid == registered.kid


async def test_keys_rotate_by_adding_and_a_key_in_use_cannot_be_dropped(
    tmp_path: Path, database_url: str
) -> None:
    old, new = _key(), _key()
    before = _host(tmp_path, database_url, "host-a", {"k1": old})
    rotated = _host(tmp_path, database_url, "host-b", {"k1": old, "k2": new}, active="k2")
    # A superset of the recorded keys is fine while the others still run.
    async with (
        Runtime.open(before, role=ProcessRole.API),
        Runtime.open(rotated, role=ProcessRole.WORKER),
    ):
        pass
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT fingerprint FROM fleet_settings WHERE name = 'vault.keys'"
        ).fetchone()
    assert row is not None
    assert set(row[0]["checks"]) == {"k1", "k2"}
    assert old not in str(row[0])
    assert new not in str(row[0])

    # Another key under a recorded id is refused, naming it.
    impostor = _host(tmp_path, database_url, "host-c", {"k1": _key(), "k2": new}, active="k2")
    with pytest.raises(FleetSettingsMismatch, match="'k1'"):
        async with Runtime.open(impostor, role=ProcessRole.API):
            pass
    # k1 sealed the signing key: a process without it cannot start, even alone.
    without_old = _host(tmp_path, database_url, "host-d", {"k2": new}, active="k2")
    with pytest.raises(FleetSettingsMismatch, match="lacks key 'k1'"):
        async with Runtime.open(without_old, role=ProcessRole.API):
            pass


async def test_public_base_url_and_storage_must_match_the_running_processes(
    tmp_path: Path, database_url: str
) -> None:
    keys = {"k1": _key()}
    running = _host(tmp_path, database_url, "host-a", keys)
    elsewhere = _host(tmp_path, database_url, "host-b", keys, public_base_url=None)
    other_storage = _host(tmp_path, database_url, "host-c", keys)
    other_storage.exports.storage = "s3"
    other_storage.exports.s3_bucket = "exports"
    async with Runtime.open(running, role=ProcessRole.API):
        with pytest.raises(FleetSettingsMismatch) as refused:
            async with Runtime.open(elsewhere, role=ProcessRole.WORKER):
                pass
        assert "api.public_base_url" in str(refused.value)
        assert "EHICONNECT_API__PUBLIC_BASE_URL" in str(refused.value)
        with pytest.raises(FleetSettingsMismatch) as refused:
            async with Runtime.open(other_storage, role=ProcessRole.WORKER):
                pass
        assert "exports.storage" in str(refused.value)
        # A command-line process serves no links: only its vault keys must match.
        async with Runtime.open(elsewhere, role=ProcessRole.CLI):
            pass
    # With nothing else running, a new value is the fleet's new setting (a full restart).
    async with Runtime.open(elsewhere, role=ProcessRole.WORKER):
        pass
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT fingerprint FROM fleet_settings WHERE name = 'api.public_base_url'"
        ).fetchone()
    assert row == ({"url": elsewhere.public_base_url},)
