"""Exports stored in S3-compatible storage: the download is a redirect to a presigned URL."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import (
    drain,
    expected,
    read_export,
    start,
    status,
    store_exports_in_s3,
)
from tests.support.s3_server import S3Server


@pytest.fixture
def settings(settings: Settings, s3_server: S3Server) -> Settings:
    """The platform's settings with export storage in S3 (before any runtime opens)."""
    return store_exports_in_s3(settings, s3_server)


async def test_an_export_in_s3_is_served_by_presigned_redirect(
    platform: Platform, runtime: Runtime, s3_server: S3Server
) -> None:
    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    task_id = start(platform, connection_id)
    await drain(runtime)
    done = status(platform, task_id)
    assert done["status"] == "success", done
    [file] = done["files"]
    url = f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}/download/{file['file_id']}"
    redirect = httpx.get(url, auth=platform.auth())
    assert redirect.status_code == 302
    presigned = redirect.headers["location"]
    assert presigned.startswith(s3_server.endpoint_url)
    body = httpx.get(presigned).content  # no platform credentials: the URL carries the grant
    assert hashlib.sha256(body).hexdigest() == file["sha256"]
    keys, _ = read_export(body)
    assert set(keys) == expected("harbor", "tina")[0]
    assert not list(s3_server.root.rglob("staging/*"))  # staging blobs were cleaned up
