"""Vault key rotation: `vault add-key`, then `vault reencrypt` moves every secret to the new key."""

from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import select

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tokens import endpoint_auth, fresh_access_token, open_tokens
from ehiconnect.consent.models import ConsentFlow
from ehiconnect.rekey import reencrypt_secrets
from ehiconnect.runtime import Runtime, build_cipher
from ehiconnect.settings import Settings
from ehiconnect.vault import KeyFile, Sealed, TokenCipher
from ehiconnect.webhooks.endpoints import active_secrets, add_endpoint
from ehiconnect.webhooks.models import WebhookEndpoint
from tests.integration.catalog.conftest import run_cli
from tests.integration.consent.conftest import Platform, endpoint_ids

ENDPOINT_SECRET = "cedar-client-secret-7f3a"


def _only_key(settings: Settings, kid: str) -> TokenCipher:
    stored = KeyFile.model_validate_json((settings.data_dir / "vault-keys.json").read_text())
    return TokenCipher({kid: base64.b64decode(stored.keys[kid])}, kid)


async def _seed(platform: Platform, runtime: Runtime) -> tuple[str, str, str]:
    """A connection with tokens, a consent flow, an endpoint secret and a webhook secret."""
    connection_id = platform.connect("harbor", "amy")["org_connection_id"]
    cedar = endpoint_ids(platform.sandbox.url)["cedar"]
    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, cedar)
        assert endpoint is not None
        sealed = runtime.cipher.seal(ENDPOINT_SECRET, context=f"endpoint:{cedar}:client_secret")
        endpoint.client_secret_kid, endpoint.client_secret_ct = sealed.kid, sealed.ciphertext
        created = await add_endpoint(
            session,
            runtime.clock,
            runtime.cipher,
            org_id=platform.org.org_id,
            api_mode="test",
            url="https://hooks.acme.example/ehiconnect",
        )
    return connection_id, cedar, created.secret


async def test_reencrypt_after_add_key_moves_every_secret_to_the_new_key(
    platform: Platform, runtime: Runtime, settings: Settings, cli_env: dict[str, str]
) -> None:
    connection_id, cedar, webhook_secret = await _seed(platform, runtime)
    old_kid = runtime.cipher.active_kid
    async with runtime.database.transaction() as session:
        row = await session.get(ConnectionTokens, connection_id)
        assert row is not None
        before = open_tokens(runtime.cipher, row)

    added = run_cli(cli_env, "vault", "add-key", "--json")
    assert added.returncode == 0, added.stderr
    new_kid = json.loads(added.stdout)["active_kid"]
    assert new_kid != old_kid
    result = run_cli(cli_env, "vault", "reencrypt", "--batch-size", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["active_kid"] == new_kid
    assert report["resealed"] == {
        "connection_tokens": 1,
        "consent_flows": 1,
        "endpoint_client_secrets": 1,
        "webhook_secrets": 1,
        "client_signing_keys": 1,
    }
    assert set(report["unreadable"].values()) == {0}

    # Everything opens with the new key alone: the old one can be retired.
    new_only = _only_key(settings, new_kid)
    async with runtime.database.transaction() as session:
        row = await session.get(ConnectionTokens, connection_id)
        assert row is not None
        assert row.kid == new_kid
        assert open_tokens(new_only, row) == before
        [flow] = (await session.scalars(select(ConsentFlow))).all()
        assert flow.verifier_kid == new_kid
        new_only.open(
            Sealed(flow.verifier_kid, flow.verifier_ct), context=f"flow:{flow.state_hash}"
        )
        endpoint = await session.get(CatalogEndpoint, cedar)
        assert endpoint is not None
        assert endpoint.client_secret_kid == new_kid
        assert endpoint_auth(new_only, endpoint).secret == ENDPOINT_SECRET
        hooks = list(await session.scalars(select(WebhookEndpoint.endpoint_id)))
        signing = await active_secrets(session, new_only, hooks, runtime.clock.now())
    assert [s for values in signing.values() for s in values] == [webhook_secret]

    # A rerun has nothing left to do, and the restarted processes keep refreshing tokens.
    rotated = build_cipher(settings)
    assert (await reencrypt_secrets(runtime.database, rotated)).resealed == dict.fromkeys(
        report["resealed"], 0
    )
    async with Runtime.open(settings, migrate=False) as restarted:
        token = await fresh_access_token(
            restarted.database,
            restarted.cipher,
            restarted.clock,
            restarted.http,
            restarted.jobs,
            connection_id,
            margin=dt.timedelta(minutes=5),
            force=True,
        )
    assert token != before.access_token


async def test_rows_whose_key_is_missing_are_reported_and_left_alone(
    platform: Platform, runtime: Runtime, settings: Settings, cli_env: dict[str, str]
) -> None:
    connection_id, _, _ = await _seed(platform, runtime)
    new_kid = json.loads(run_cli(cli_env, "vault", "add-key", "--json").stdout)["active_kid"]
    report = await reencrypt_secrets(runtime.database, _only_key(settings, new_kid))
    assert not report.complete
    assert report.unreadable["connection_tokens"] == 1
    assert report.resealed["connection_tokens"] == 0
    async with runtime.database.transaction() as session:
        row = await session.get(ConnectionTokens, connection_id)
        assert row is not None
        assert row.kid == runtime.cipher.active_kid  # untouched, still opens with the old key
        open_tokens(runtime.cipher, row)


def test_add_key_refuses_when_keys_come_from_settings(cli_env: dict[str, str]) -> None:
    key = base64.b64encode(bytes(32)).decode()
    env = {**cli_env, "EHICONNECT_VAULT__KEYS": json.dumps({"k1": key})}
    result = run_cli(env, "vault", "add-key")
    assert result.returncode == 1
    assert "come from settings" in result.stderr
