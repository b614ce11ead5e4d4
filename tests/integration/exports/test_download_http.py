"""Downloading an export over real HTTP: Range with If-Range, HEAD, conditional requests."""

from __future__ import annotations

import email.utils
import hashlib

import httpx
import pytest

from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import drain, start, status, store_exports_in_s3
from tests.support.s3_server import S3Server


async def _exported(platform: Platform, runtime: Runtime) -> tuple[str, bytes, httpx.Response]:
    """A finished export's download URL, its bytes, and the 200 response that carried them."""
    task_id = start(platform, platform.connect("harbor", "tina")["org_connection_id"])
    await drain(runtime)
    done = status(platform, task_id)
    assert done["status"] == "success", done
    url = f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}/download/"
    url += done["files"][0]["file_id"]
    whole = download(platform, url)
    assert whole.status_code == 200
    return url, whole.content, whole


def download(platform: Platform, url: str, **headers: str) -> httpx.Response:
    """GET with header fields named like `if_range=` (sent as `if-range`)."""
    return httpx.get(url, auth=platform.auth(), headers=_fields(headers), timeout=60)


def head(platform: Platform, url: str, **headers: str) -> httpx.Response:
    return httpx.head(url, auth=platform.auth(), headers=_fields(headers))


def _fields(headers: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in headers.items()}


async def test_if_range_with_a_stale_validator_sends_the_whole_file(
    platform: Platform, runtime: Runtime
) -> None:
    url, body, whole = await _exported(platform, runtime)
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]
    assert etag == f'"{hashlib.sha256(body).hexdigest()}"'
    assert email.utils.parsedate_to_datetime(modified).tzinfo is not None  # an HTTP-date
    cut = len(body) // 2

    # A resuming client whose partial copy came from another file gets this whole file, not a
    # slice of it to splice onto bytes that do not belong with it (RFC 9110 §13.1.5).
    for stale in ('"0000"', f"W/{etag}", "Sun, 06 Nov 1994 08:49:37 GMT", "not a validator"):
        fresh = download(platform, url, range=f"bytes={cut}-", if_range=stale)
        assert fresh.status_code == 200, stale
        assert "content-range" not in fresh.headers
        assert fresh.content == body
        assert int(fresh.headers["content-length"]) == len(body)

    for current in (etag, modified):
        tail = download(platform, url, range=f"bytes={cut}-", if_range=current)
        assert tail.status_code == 206, current
        assert tail.headers["content-range"] == f"bytes {cut}-{len(body) - 1}/{len(body)}"
        assert tail.content == body[cut:]


async def test_head_answers_like_get_without_a_body(platform: Platform, runtime: Runtime) -> None:
    url, body, whole = await _exported(platform, runtime)
    answer = head(platform, url)
    assert answer.status_code == 200
    assert answer.content == b""
    for name in ("content-length", "etag", "last-modified", "accept-ranges", "content-type"):
        assert answer.headers[name] == whole.headers[name], name
    assert answer.headers["accept-ranges"] == "bytes"
    assert int(answer.headers["content-length"]) == len(body)
    assert answer.headers["repr-digest"] == whole.headers["repr-digest"]

    partial = head(platform, url, range="bytes=10-19")
    assert partial.status_code == 206
    assert partial.headers["content-range"] == f"bytes 10-19/{len(body)}"
    assert partial.headers["content-length"] == "10"
    assert head(platform, url, range=f"bytes={len(body)}-").status_code == 416
    assert head(platform, url.replace("/download/", "/download/x")).status_code == 404


async def test_unsatisfiable_multiple_and_foreign_ranges(
    platform: Platform, runtime: Runtime
) -> None:
    url, body, _ = await _exported(platform, runtime)
    for unsatisfiable in (f"bytes={len(body)}-", "bytes=-0", "bytes=9-2", "bytes=x-"):
        refused = download(platform, url, range=unsatisfiable)
        assert refused.status_code == 416, unsatisfiable
        assert refused.headers["content-range"] == f"bytes */{len(body)}"
        assert refused.json()["error"] == "range_not_satisfiable"
        # a resuming client that already has every byte learns the digest to check them against
        assert refused.headers["x-content-sha256"] == hashlib.sha256(body).hexdigest()
    for whole_file in ("bytes=0-9,20-29", "lines=0-9"):
        answer = download(platform, url, range=whole_file)
        assert answer.status_code == 200, whole_file
        assert answer.content == body
    suffix = download(platform, url, range="bytes=-100")
    assert suffix.status_code == 206
    assert suffix.content == body[-100:]


async def test_conditional_requests(platform: Platform, runtime: Runtime) -> None:
    url, _, whole = await _exported(platform, runtime)
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]
    for headers in ({"if_none_match": etag}, {"if_modified_since": modified}):
        unchanged = download(platform, url, **headers)
        assert unchanged.status_code == 304, headers
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == etag
    assert download(platform, url, if_none_match='"other"').status_code == 200
    refused = download(platform, url, if_match='"other"')
    assert refused.status_code == 412
    assert refused.json()["error"] == "precondition_failed"
    assert download(platform, url, if_match=etag, range="bytes=0-0").status_code == 206


async def test_the_per_type_view_has_its_own_validator_and_no_ranges(
    platform: Platform, runtime: Runtime
) -> None:
    url, body, whole = await _exported(platform, runtime)
    patients = download(platform, f"{url}?type=Patient", range="bytes=0-9")
    assert patients.status_code == 200  # ranges are not offered on a filtered view
    assert patients.headers["accept-ranges"] == "none"
    assert patients.content.count(b"\n") == 1
    assert patients.content in body
    assert patients.headers["etag"] != whole.headers["etag"]
    assert (
        download(
            platform, f"{url}?type=Patient", if_none_match=patients.headers["etag"]
        ).status_code
        == 304
    )
    peek = head(platform, f"{url}?type=Patient")
    assert peek.status_code == 200
    assert peek.headers["etag"] == patients.headers["etag"]
    assert "content-length" not in peek.headers  # unknown until the file is filtered
    bad = download(platform, f"{url}?type=Patient%00")
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_request"


class TestPresignedStorage:
    @pytest.fixture
    def settings(self, settings: Settings, s3_server: S3Server) -> Settings:
        return store_exports_in_s3(settings, s3_server)

    async def test_head_and_a_stale_if_range_are_answered_here_not_redirected(
        self, platform: Platform, runtime: Runtime
    ) -> None:
        task_id = start(platform, platform.connect("harbor", "tina")["org_connection_id"])
        await drain(runtime)
        [file] = status(platform, task_id)["files"]
        url = f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}/download/{file['file_id']}"
        assert download(platform, url).status_code == 302  # plain GET: the presigned URL
        # A presigned URL is signed for GET: a HEAD redirected there would be refused.
        answer = head(platform, url)
        assert answer.status_code == 200
        assert int(answer.headers["content-length"]) == file["size"]
        assert answer.headers["etag"] == f'"{file["sha256"]}"'
        # The store would honour the Range the client re-sends on the redirect: a stale If-Range
        # is therefore answered with the whole file from here.
        fresh = download(platform, url, range="bytes=100-", if_range='"0000"')
        assert fresh.status_code == 200
        assert hashlib.sha256(fresh.content).hexdigest() == file["sha256"]
