"""S3BlobStore against a real S3 API server on loopback (`rclone serve s3`, SigV4 enforced)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from ehiconnect.storage.port import BlobNotFound, InvalidKey, StorageError
from ehiconnect.storage.s3 import S3BlobStore
from tests.support.s3_server import BUCKET, S3Server

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _count_calls(store: S3BlobStore, operations: list[str]) -> None:
    def record(model: Any, **_: Any) -> None:
        operations.append(model.name)

    store._client.meta.events.register("before-call.s3", record)


async def test_large_object_is_uploaded_in_parts_and_read_back_by_range(
    s3_server: S3Server,
) -> None:
    data = os.urandom(20 * MIB + 12345)
    store = s3_server.store()
    operations: list[str] = []
    _count_calls(store, operations)

    async with store.open_writer("2026-11-29-big.jsonl") as writer:
        for offset in range(0, len(data), MIB):
            await writer.write(data[offset : offset + MIB])

    assert operations.count("UploadPart") == 3  # 8 MiB + 8 MiB + the rest
    assert "CompleteMultipartUpload" in operations
    assert "PutObject" not in operations
    assert writer.stored.size == len(data)
    assert writer.stored.sha256 == hashlib.sha256(data).hexdigest()

    info = await store.stat("2026-11-29-big.jsonl")
    assert info is not None
    assert info.size == len(data)
    start, end = 8 * MIB - 10, 8 * MIB + 10  # across a part boundary
    ranged = b"".join([c async for c in store.open_reader("2026-11-29-big.jsonl", start, end)])
    assert ranged == data[start:end]
    tail = b"".join([c async for c in store.open_reader("2026-11-29-big.jsonl", len(data) - 5)])
    assert tail == data[-5:]
    whole = hashlib.sha256()
    async for chunk in store.open_reader("2026-11-29-big.jsonl"):
        whole.update(chunk)
    assert whole.hexdigest() == writer.stored.sha256

    await store.delete("2026-11-29-big.jsonl")
    assert await store.stat("2026-11-29-big.jsonl") is None
    with pytest.raises(BlobNotFound):
        _ = [c async for c in store.open_reader("2026-11-29-big.jsonl")]


async def test_small_object_is_one_put_and_failed_writes_leave_nothing(
    s3_server: S3Server,
) -> None:
    store = s3_server.store(prefix="tenant-a/")  # written like a folder: the same prefix
    operations: list[str] = []
    _count_calls(store, operations)
    async with store.open_writer("small.jsonl") as writer:
        await writer.write(b'{"resourceType":"Patient","id":"p"}\n')
    assert operations == ["PutObject"]
    assert (s3_server.root / BUCKET / "tenant-a" / "small.jsonl").exists()

    class Boom(Exception):
        pass

    async def fail_midway() -> None:
        async with store.open_writer("partial.jsonl") as failing:
            await failing.write(os.urandom(9 * MIB))  # one part already uploaded
            raise Boom

    with pytest.raises(Boom):
        await fail_midway()
    assert "AbortMultipartUpload" in operations
    assert await store.stat("partial.jsonl") is None
    with pytest.raises(InvalidKey):
        await store.stat("../escape")


async def test_presigned_url_works_with_plain_http_then_expires(s3_server: S3Server) -> None:
    store = s3_server.store()
    payload = os.urandom(4096)
    async with store.open_writer("link.jsonl") as writer:
        await writer.write(payload)

    signed_at = time.monotonic()
    url = await store.presigned_url("link.jsonl", expires_in=2)
    assert url is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
        assert response.status_code == 200
        assert response.content == payload
        ranged = await http.get(url, headers={"Range": "bytes=10-19"})
        assert ranged.content == payload[10:20]

        tampered = url.replace("X-Amz-Expires=2", "X-Amz-Expires=3600")
        assert (await http.get(tampered)).status_code in (400, 403)
        unsigned = await http.get(f"{s3_server.endpoint_url}/{BUCKET}/link.jsonl")
        assert unsigned.status_code in (400, 403)

        await asyncio.sleep(max(0.0, signed_at + 3.2 - time.monotonic()))
        expired = await http.get(url)
    assert expired.status_code in (400, 403)
    assert b"AccessDenied" in expired.content


async def test_wrong_credentials_are_refused(s3_server: S3Server) -> None:
    store = s3_server.store(secret="not-the-secret")
    with pytest.raises(StorageError, match="refused"):
        await store.stat("anything")
    with pytest.raises(StorageError, match="check the access key"):
        async with store.open_writer("denied") as writer:
            await writer.write(b"x")
    assert not (s3_server.root / BUCKET / "denied").exists()


async def test_deleting_a_folder_removes_its_objects_and_unfinished_uploads(
    s3_server: S3Server,
) -> None:
    store = s3_server.store(prefix="tenant-a/")
    for key in ("staging/t1/a", "staging/t1/b", "staging/t10/c"):
        async with store.open_writer(key) as writer:
            await writer.write(b"x")
    # What a worker killed mid-upload leaves: an upload begun, a part stored, never completed.
    client = store._client
    started = client.create_multipart_upload(Bucket=BUCKET, Key="tenant-a/staging/t1/big")
    client.upload_part(
        Bucket=BUCKET,
        Key="tenant-a/staging/t1/big",
        UploadId=started["UploadId"],
        PartNumber=1,
        Body=os.urandom(5 * MIB),
    )
    await store.delete_folder("staging/t1")
    assert await store.stat("staging/t1/a") is None
    assert await store.stat("staging/t1/b") is None
    assert await store.stat("staging/t10/c") is not None
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix="tenant-a/staging/t1/")
    assert uploads.get("Uploads", []) == []
    await store.delete_folder("staging/t1")  # nothing left: fine


async def test_objects_a_multi_delete_could_not_delete_are_an_error(s3_server: S3Server) -> None:
    store = s3_server.store(prefix="tenant-a/")
    async with store.open_writer("staging/t2/a") as writer:
        await writer.write(b"x")

    def refuse(parsed: dict[str, Any], **_: Any) -> None:  # S3 answers 200 with per-key errors
        parsed["Errors"] = [
            {"Key": "tenant-a/staging/t2/a", "Code": "AccessDenied", "Message": "Access Denied"}
        ]

    store._client.meta.events.register("after-call.s3.DeleteObjects", refuse)
    with pytest.raises(StorageError, match=r"did not delete 1 objects.*AccessDenied"):
        await store.delete_folder("staging/t2")


async def test_a_store_that_cannot_list_uploads_still_has_its_folder_deleted(
    s3_server: S3Server,
) -> None:
    store = s3_server.store(prefix="tenant-a/")
    async with store.open_writer("staging/t3/a") as writer:
        await writer.write(b"x")

    def not_implemented(**_: Any) -> None:  # as some S3-compatible stores answer
        raise ClientError(
            {"Error": {"Code": "NotImplemented", "Message": "not implemented"}},
            "ListMultipartUploads",
        )

    store._client.meta.events.register("before-call.s3.ListMultipartUploads", not_implemented)
    await store.delete_folder("staging/t3")
    assert await store.stat("staging/t3/a") is None
