"""An in-memory `BlobStore` for unit tests of pure logic. Not for production: nothing persists."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ehiconnect.storage.port import (
    BlobNotFound,
    HashingCounter,
    ObjectInfo,
    StoredObject,
    WriterResult,
    check_range,
    copy_file_in,
    validate_key,
)


class MemoryBlobWriter(WriterResult):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()
        self.counter = HashingCounter()

    async def flush(self) -> None:
        """Nothing in flight: `counter` is current after each write."""

    async def write(self, data: bytes, /) -> None:
        self.counter.update(data)
        self.buffer += data


class MemoryBlobStore:
    def __init__(self, *, chunk_size: int = 64 * 1024) -> None:
        self.objects: dict[str, bytes] = {}
        self._chunk_size = chunk_size

    @asynccontextmanager
    async def open_writer(self, key: str) -> AsyncIterator[MemoryBlobWriter]:
        validate_key(key)
        writer = MemoryBlobWriter()
        yield writer
        self.objects[key] = bytes(writer.buffer)
        writer.commit(writer.counter.result(key))

    async def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        data = self._get(key)
        first, stop = check_range(key, len(data), start, end)
        for offset in range(first, stop, self._chunk_size):
            yield data[offset : min(offset + self._chunk_size, stop)]

    async def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        data = self.objects.get(key)
        if data is None:
            return None
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return ObjectInfo(key=key, size=len(data), etag=etag)

    async def delete(self, key: str) -> None:
        validate_key(key)
        self.objects.pop(key, None)

    async def delete_folder(self, prefix: str) -> None:
        folder = validate_key(prefix) + "/"
        for key in [key for key in self.objects if key.startswith(folder)]:
            del self.objects[key]

    async def presigned_url(self, key: str, expires_in: float) -> str | None:
        validate_key(key)
        return None

    def staging_path(self, key: str) -> Path | None:
        validate_key(key)
        return None

    async def commit_file(self, key: str, path: Path, *, sha256: str | None = None) -> StoredObject:
        return await copy_file_in(self.open_writer, key, Path(path), sha256, self._chunk_size)

    def _get(self, key: str) -> bytes:
        validate_key(key)
        try:
            return self.objects[key]
        except KeyError:
            raise BlobNotFound(f"no stored object {key!r}") from None
