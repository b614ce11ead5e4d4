"""The storage port for export files: a small `BlobStore` Protocol and its shared rules.

    async with store.open_writer("exports/2026-11-29-<uuid>.jsonl") as writer:
        await writer.write(chunk)          # as many times as needed
    writer.stored                          # StoredObject(key, size, sha256), once committed

    async for chunk in store.open_reader(key, start=0, end=None): ...
    await store.stat(key)                  # ObjectInfo(key, size, etag) or None
    await store.delete(key)                # no error when already gone
    await store.presigned_url(key, expires_in=300)   # str, or None when the store has none

An object becomes visible only when its writer's block exits without an exception; a failed
write leaves nothing behind. `end` in `open_reader` is exclusive, like a Python slice (HTTP
`Range: bytes=a-b` is `start=a, end=b+1`).

Keys are `/`-separated segments of `[A-Za-z0-9._=-]`, none empty, `.` or `..`, none starting with
`.` (reserved for temporary files), at most 1024 characters: safe as a path and as an S3 key.

Adapters: `local.LocalBlobStore`, `s3.S3BlobStore`, `memory.MemoryBlobStore` (for unit tests).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

MAX_KEY_LENGTH = 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9_=-][A-Za-z0-9._=-]*$")


class StorageError(Exception):
    """A storage operation failed."""


class InvalidKey(StorageError, ValueError):
    """The key is not allowed (empty, too long, escapes the store, odd characters)."""


class BlobNotFound(StorageError, KeyError):
    """No object has that key (never written, deleted, or expired)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "object not found"


class InvalidRange(StorageError, ValueError):
    """The requested byte range does not fit the object."""


@dataclass(frozen=True)
class StoredObject:
    """A committed object: its size in bytes and sha256 (hex) of its content."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str


class BlobWriter(Protocol):
    async def write(self, data: bytes, /) -> None: ...

    @property
    def stored(self) -> StoredObject:
        """The committed object; raises StorageError before a successful close."""
        ...


class BlobStore(Protocol):
    def open_writer(self, key: str) -> AbstractAsyncContextManager[BlobWriter]: ...

    def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]: ...

    async def stat(self, key: str) -> ObjectInfo | None: ...

    async def delete(self, key: str) -> None: ...

    async def presigned_url(self, key: str, expires_in: float) -> str | None: ...


def validate_key(key: str) -> str:
    """The key unchanged when allowed, else `InvalidKey` saying why."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"storage key is {len(key)} characters; the limit is {MAX_KEY_LENGTH}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(
                f"storage key {key!r} has an empty, '.' or '..' segment; "
                "use a relative path like 'exports/file.jsonl'"
            )
        if not _SEGMENT.match(segment):
            raise InvalidKey(
                f"storage key {key!r}: segment {segment!r} may use only letters, digits and "
                "'._=-', and must not start with '.'"
            )
    return key


def check_range(key: str, size: int, start: int, end: int | None) -> tuple[int, int]:
    """The effective `[start, end)` within an object of `size` bytes (end clamped to size)."""
    if start < 0 or (end is not None and end < start):
        raise InvalidRange(f"invalid byte range start={start} end={end} for {key!r}")
    stop = size if end is None else min(end, size)
    if start > size or (start == size and size > 0):
        raise InvalidRange(f"range starts at byte {start} but {key!r} has {size} bytes")
    return start, stop


class HashingCounter:
    """sha256 and size of the bytes passing through a writer."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def result(self, key: str) -> StoredObject:
        return StoredObject(key=key, size=self.size, sha256=self._hash.hexdigest())


class WriterResult:
    """Holds a writer's `stored` value once it is committed."""

    def __init__(self) -> None:
        self._stored: StoredObject | None = None

    @property
    def stored(self) -> StoredObject:
        if self._stored is None:
            raise StorageError(
                "the object is not committed yet; read `stored` after the writer block exits"
            )
        return self._stored

    def commit(self, stored: StoredObject) -> None:
        self._stored = stored
