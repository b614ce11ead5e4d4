"""A `BlobStore` on S3-compatible object storage (AWS S3, MinIO, Ceph, R2, rclone serve s3).

Uploads stream: bytes are buffered to `part_size` (≥ 8 MiB); an object that stays below one part
is sent with a single PUT, a larger one as a multipart upload, part by part, so memory holds at
most one part. The object appears only when the writer block exits cleanly; on an exception the
multipart upload is aborted. Reads are ranged GETs streamed in `chunk_size` pieces. Presigned GET
URLs are SigV4 and expire after `expires_in` seconds; SigV4 signs the host, so when customers reach
the store by another name than the workers do (`public_endpoint_url`), links are signed by a
second client configured for that name. boto3 is blocking, so every call runs in a worker thread.

`commit_file` uploads a finished local file the same way (streamed, its sha256 checked
before the upload completes) and removes it; there is no `staging_path`: S3 cannot append.

Build one with `S3BlobStore.connect(...)` (creates a boto3 client; no network I/O), or pass any
boto3 S3 client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ehiconnect.storage.port import (
    BlobNotFound,
    HashingCounter,
    InvalidRange,
    ObjectInfo,
    StorageError,
    StoredObject,
    WriterResult,
    copy_file_in,
    validate_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

MIN_PART_SIZE = 8 * 1024 * 1024
CHUNK_SIZE = 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_T = TypeVar("_T")


async def _call(key: str, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a blocking boto3 call in a thread; its errors become `StorageError`s."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except ClientError as error:
        raise _translate(error, key) from error
    except BotoCoreError as error:
        raise StorageError(
            f"could not reach S3 for {key!r} ({type(error).__name__}); check the endpoint URL "
            "and that the service is up"
        ) from error


class S3BlobWriter(WriterResult):
    """Buffers one part at a time; starts a multipart upload only once a full part exists."""

    def __init__(self, client: S3Client, bucket: str, key: str, part_size: int) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self.counter = HashingCounter()

    async def flush(self) -> None:
        """Nothing in flight: `counter` is current after each write."""

    async def write(self, data: bytes, /) -> None:
        self.counter.update(data)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            await self._upload_part(part)

    async def _upload_part(self, part: bytes) -> None:
        if self._upload_id is None:
            created = await _call(
                self._key,
                self._client.create_multipart_upload,
                Bucket=self._bucket,
                Key=self._key,
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        response = await _call(
            self._key,
            self._client.upload_part,
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    async def finish(self) -> None:
        if self._upload_id is None:
            await _call(
                self._key,
                self._client.put_object,
                Bucket=self._bucket,
                Key=self._key,
                Body=bytes(self._buffer),
            )
            self._buffer.clear()
            return
        if self._buffer:
            await self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        await _call(
            self._key,
            self._client.complete_multipart_upload,
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    async def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            # The original failure matters more; a bucket lifecycle rule cleans up leftovers.
            with contextlib.suppress(StorageError):
                await _call(
                    self._key,
                    self._client.abort_multipart_upload,
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                )


class S3BlobStore:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "",
        part_size: int = MIN_PART_SIZE,
        chunk_size: int = CHUNK_SIZE,
        presign_client: S3Client | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (8 MiB)")
        prefix = prefix.strip("/")  # "exports/" reads like a folder; keys join with "/" anyway
        if prefix:
            validate_key(prefix)
        self._client = client
        self._presign_client = presign_client or client
        self.bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._part_size = part_size
        self._chunk_size = chunk_size

    @classmethod
    def connect(
        cls,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        path_style: bool = True,
        public_endpoint_url: str | None = None,
        **options: Any,
    ) -> S3BlobStore:
        """A store with its own boto3 client (SigV4; path-style addressing for self-hosted S3).

        `public_endpoint_url`: where customers reach the same store, when not by `endpoint_url`;
        presigned URLs are signed for it (creating the client does no network I/O)."""
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            # Third-party S3 servers may not know the newer default CRC checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

        def client_for(url: str | None) -> S3Client:
            return boto3.client(
                "s3",
                endpoint_url=url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )

        client = client_for(endpoint_url)
        if public_endpoint_url and public_endpoint_url != endpoint_url:
            options["presign_client"] = client_for(public_endpoint_url)
        return cls(client, bucket, **options)

    def _object_key(self, key: str) -> str:
        return self._prefix + validate_key(key)

    @asynccontextmanager
    async def open_writer(self, key: str) -> AsyncIterator[S3BlobWriter]:
        writer = S3BlobWriter(self._client, self.bucket, self._object_key(key), self._part_size)
        try:
            yield writer
            await writer.finish()
        except BaseException:
            await asyncio.shield(writer.abort())
            raise
        writer.commit(writer.counter.result(key))

    async def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise InvalidRange(f"invalid byte range start={start} end={end} for {key!r}")
        if end == start:
            return
        byte_range = f"bytes={start}-" + ("" if end is None else str(end - 1))
        response = await _call(
            key,
            self._client.get_object,
            Bucket=self.bucket,
            Key=self._object_key(key),
            Range=byte_range,
        )
        body = response["Body"]
        try:
            while True:
                chunk = await _call(key, body.read, self._chunk_size)
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = await _call(
                key, self._client.head_object, Bucket=self.bucket, Key=self._object_key(key)
            )
        except BlobNotFound:
            return None
        return ObjectInfo(key=key, size=head["ContentLength"], etag=head["ETag"].strip('"'))

    async def delete(self, key: str) -> None:
        with contextlib.suppress(BlobNotFound):
            await _call(
                key, self._client.delete_object, Bucket=self.bucket, Key=self._object_key(key)
            )

    async def delete_folder(self, prefix: str) -> None:
        await _call(prefix, self._delete_under, self._object_key(prefix) + "/")

    def _delete_under(self, folder: str) -> None:
        """Blocking: every object under `folder` deleted, a page of keys per request, then every
        unfinished multipart upload under it aborted (its parts are stored, and billed)."""
        objects = self._client.get_paginator("list_objects_v2")
        for page in objects.paginate(Bucket=self.bucket, Prefix=folder):
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", [])
            ]
            if not keys:
                continue
            answer = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
            )
            if failed := answer.get("Errors"):  # a multi-delete answers 200 with these
                first = failed[0]
                raise StorageError(
                    f"S3 did not delete {len(failed)} objects under {folder!r} (the first, "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}); check "
                    "that the credentials may delete objects (s3:DeleteObject) and try again"
                )
        uploads = self._client.get_paginator("list_multipart_uploads")
        try:
            for listing in uploads.paginate(Bucket=self.bucket, Prefix=folder):
                for upload in listing.get("Uploads", []):
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        except ClientError as error:
            # A store that cannot list uploads: its lifecycle rule has to abort them (storage.md).
            if error.response.get("Error", {}).get("Code") != "NotImplemented":
                raise

    def staging_path(self, key: str) -> Path | None:
        self._object_key(key)
        return None

    async def commit_file(self, key: str, path: Path, *, sha256: str | None = None) -> StoredObject:
        return await copy_file_in(self.open_writer, key, Path(path), sha256, self._chunk_size)

    async def presigned_url(self, key: str, expires_in: float) -> str | None:
        seconds = int(expires_in)
        if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be 1..{MAX_PRESIGN_SECONDS} seconds (SigV4 limit)")
        url: str = await _call(
            key,
            self._presign_client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._object_key(key)},
            ExpiresIn=seconds,
        )
        return url


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translate(error: ClientError, key: str) -> StorageError:
    code = _error_code(error)
    if code in _NOT_FOUND_CODES:
        return BlobNotFound(f"no stored object {key!r}")
    if code == "InvalidRange":
        return InvalidRange(f"the requested range is outside {key!r}")
    if code in ("403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
        return StorageError(
            f"S3 refused the request for {key!r} ({code}); check the access key, secret and "
            "bucket permissions"
        )
    return StorageError(f"S3 request for {key!r} failed ({code or 'unknown error'})")
