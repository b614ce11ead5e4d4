"""The storage port for export files: a small `BlobStore` Protocol and its shared rules.

    async with store.open_writer("exports/2026-11-29-<uuid>.jsonl") as writer:
        await writer.write(chunk)          # as many times as needed
    writer.stored                          # StoredObject(key, size, sha256), once committed

    async for chunk in store.open_reader(key, start=0, end=None): ...
    await store.stat(key)                  # ObjectInfo(key, size, etag) or None
    await store.delete(key)                # no error when already gone
    await store.presigned_url(key, expires_in=300)   # str, or None when the store has none

    store.staging_path(key)                # a local file to build `key` in, or None
    await store.commit_file(key, path, sha256=...)   # move a finished local file in: StoredObject

An object becomes visible only when its writer's block exits without an exception, or when
`commit_file` returns; a failed write leaves nothing behind. `end` in `open_reader` is exclusive,
like a Python slice (HTTP `Range: bytes=a-b` is `start=a, end=b+1`).

`commit_file` is for files too large to write twice (multi-GB downloads): build the file at
`staging_path(key)` when the store has one (local storage: committing is a rename, no byte is
copied), else in any local file (S3: committing is an upload, then the file is removed).

Keys are `/`-separated segments of `[A-Za-z0-9._=-]`, none empty, `.` or `..`, none starting with
`.` (reserved for temporary files), at most 1024 characters: safe as a path and as an S3 key.

Adapters: `local.LocalBlobStore`, `s3.S3BlobStore`, `memory.MemoryBlobStore` (for unit tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
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

    async def delete_folder(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix` + "/", and what an interrupted
        writer left there (a local store's temporary files, an S3 store's unfinished multipart
        uploads); nothing when there is none. `prefix` is a key naming a folder."""
        ...

    async def presigned_url(self, key: str, expires_in: float) -> str | None: ...

    def staging_path(self, key: str) -> Path | None:
        """Where to build a file that will become `key`, so that `commit_file` only renames it.

        The same path for the same key every time (an interrupted writer can resume it), on the
        store's own filesystem, invisible to keys and readers; the caller creates it (owner-only:
        it holds PHI). None when the store keeps nothing on local disk: build the file anywhere
        and `commit_file` uploads it.
        """
        ...

    async def commit_file(self, key: str, path: Path, *, sha256: str | None = None) -> StoredObject:
        """Make the finished local file `path` the object `key` (replacing it), and remove `path`.

        A local store renames it (atomic; a copy when `path` is on another filesystem), S3
        uploads it. `sha256` is the digest the caller already checked: an adapter that copies
        the bytes checks the copy against it and commits nothing on a mismatch (StorageError), a
        rename moves those very bytes; without it the digest is computed. On any error `path` is
        left as it was. FileNotFoundError when `path` does not exist.
        """
        ...


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


def check_sha256(key: str, stored: StoredObject, expected: str | None) -> None:
    """StorageError when bytes copied for `key` are not the ones the caller checked."""
    if expected is not None and stored.sha256 != expected.lower():
        raise StorageError(
            f"the bytes copied for {key!r} have sha256 {stored.sha256[:12]}…, not the "
            f"{expected[:12]}… they were checked against; nothing was committed"
        )


class CountingWriter(Protocol):
    """An adapter's writer, which hashes what passes through it (`HashingCounter`)."""

    counter: HashingCounter

    async def write(self, data: bytes, /) -> None: ...

    async def flush(self) -> None:
        """Until this returns, `counter` may lag behind what was written (hashing in flight)."""
        ...

    @property
    def stored(self) -> StoredObject: ...


async def copy_file_in(
    open_writer: Callable[[str], AbstractAsyncContextManager[CountingWriter]],
    key: str,
    path: Path,
    sha256: str | None,
    chunk_size: int,
) -> StoredObject:
    """`commit_file` by copying: `path` streamed through a writer of `key`, checked against
    `sha256` before the object is committed, then removed."""
    file = await asyncio.to_thread(path.open, "rb")
    try:
        async with open_writer(key) as writer:
            while block := await asyncio.to_thread(file.read, chunk_size):
                await writer.write(block)
            await writer.flush()
            check_sha256(key, writer.counter.result(key), sha256)
    finally:
        file.close()
    await asyncio.to_thread(path.unlink)
    return writer.stored


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
