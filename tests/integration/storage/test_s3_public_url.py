"""Presigned links for a store that customers reach by another name than the workers do (issue 12):
signed for `exports.s3_public_endpoint_url`, since SigV4 signs the host. Here one rclone S3 server
has two names: 127.0.0.1 (the workers' "internal" one) and localhost (the "public" one)."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from pydantic import SecretStr

from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import (  # noqa: F401 (fixtures)
    Platform,
    api,
    browser,
    org,
    platform,
    platform_clock,
    sandbox,
    sandbox_app,
    sandbox_state,
)
from tests.integration.consent.conftest import (  # noqa: F401 (fixture, extended below)
    settings as platform_settings,
)
from tests.integration.exports.support import drain, start, status
from tests.support.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

BODY = b'{"resourceType":"Patient","id":"p1"}\n' * 1000


def _public(endpoint_url: str) -> str:
    """The same server by another name: localhost instead of 127.0.0.1."""
    parts = urlsplit(endpoint_url)
    assert parts.hostname == "127.0.0.1"
    return urlunsplit(parts._replace(netloc=f"localhost:{parts.port}"))


def _with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))


async def test_links_are_signed_for_the_public_name(s3_server: S3Server) -> None:
    public = _public(s3_server.endpoint_url)
    store = s3_server.store(public_endpoint_url=public)
    async with store.open_writer("t/public.jsonl") as writer:
        await writer.write(BODY)

    link = await store.presigned_url("t/public.jsonl", 60)
    assert link is not None
    assert urlsplit(link).hostname == "localhost"
    fetched = httpx.get(link)
    assert fetched.status_code == 200
    assert fetched.content == BODY
    # Why a second client: the same link with the host rewritten no longer matches its signature.
    assert httpx.get(_with_host(link, "127.0.0.1")).status_code == 403
    # Without a public name, links carry the store's own endpoint.
    internal = await s3_server.store().presigned_url("t/public.jsonl", 60)
    assert internal is not None
    assert urlsplit(internal).hostname == "127.0.0.1"


@pytest.fixture
def settings(platform_settings: Settings, s3_server: S3Server) -> Settings:  # noqa: F811
    exports = platform_settings.exports
    exports.storage = "s3"
    exports.s3_bucket = BUCKET
    exports.s3_endpoint_url = s3_server.endpoint_url
    exports.s3_public_endpoint_url = _public(s3_server.endpoint_url)
    exports.s3_access_key_id = ACCESS_KEY
    exports.s3_secret_access_key = SecretStr(SECRET_KEY)
    exports.presigned_url_seconds = 60
    return platform_settings


async def test_the_download_redirect_carries_the_public_host_and_works(
    platform: Platform,  # noqa: F811
    runtime: Runtime,
) -> None:
    task_id = start(platform, platform.connect("harbor", "tina")["org_connection_id"])
    await drain(runtime)
    done = status(platform, task_id)
    assert done["status"] == "success", done
    [file] = done["files"]
    url = f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}/download/{file['file_id']}"

    redirect = httpx.get(url, auth=platform.auth(), timeout=60)
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert urlsplit(location).hostname == "localhost"
    fetched = httpx.get(location, timeout=60)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == file["sha256"]
