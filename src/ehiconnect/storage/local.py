"""A `BlobStore` on a local directory.

Files are created owner-only (0600, directories 0700): they hold PHI.
Writes are atomic: bytes go to a hidden temporary file in the destination's directory, are
fsynced, and are renamed over the key when the writer block exits cleanly; on an exception the
temporary file is removed and nothing appears. Blocking file calls run in worker threads, in
chunks of `chunk_size` (1 MiB). Keys are validated and the resolved path must stay inside the root,
so neither `..` nor a symlink can escape it. There are no presigned URLs: the API streams files.

A large object's bytes are handed to the disk as they are written, a window at a time
(`storage.writeback`), rather than left as dirty pages for the commit's fsync: on a VM of #17's
session 11, 1 GiB written and fsynced went at 0.38-0.68 GB/s that way, 1.5-2.0 GB/s streamed.

A large file is better built in place: `staging_path(key)` is the hidden file `.<name>.partial`
beside the key's file, and `commit_file` fsyncs it and renames it over the key (atomic, no byte
copied; a copy only when the file given is on another filesystem).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ehiconnect.storage import writeback
from ehiconnect.storage.port import (
    BlobNotFound,
    HashingCounter,
    InvalidKey,
    ObjectInfo,
    StoredObject,
    WriterResult,
    check_range,
    copy_file_in,
    validate_key,
)

CHUNK_SIZE = 1024 * 1024


class LocalBlobWriter(WriterResult):
    """Hashes and writes the bytes in a worker thread, a chunk's worth at a time, while the
    caller prepares the next (base64, a download): one batch in flight at a time, so the file
    keeps its order, and sha256 (which releases the GIL) overlaps the caller's work on a second
    core. The temporary file is made by the first batch's hop: a blob smaller than a chunk (an
    attachment staged by the crawl) costs one thread hop in all, file made, written, committed."""

    def __init__(self, create: Callable[[], _Temporary], chunk_size: int) -> None:
        super().__init__()
        self._create = create
        self._temporary: _Temporary | None = None
        self._writeback = writeback.StreamedWriteback()
        self._chunk_size = chunk_size
        self._pending: list[bytes] = []  # held, not joined: written piece by piece
        self._pending_size = 0
        self._in_flight: asyncio.Future[None] | None = None
        self.counter = HashingCounter()

    async def write(self, data: bytes, /) -> None:
        if not data:
            return
        self._pending.append(bytes(data))  # a copy unless already immutable bytes
        self._pending_size += len(data)
        if self._pending_size >= self._chunk_size:
            await self.drain()

    async def drain(self) -> None:
        if not self._pending:
            return
        await self.settle()
        pieces, self._pending, self._pending_size = self._pending, [], 0
        created = self._temporary is not None
        self._in_flight = asyncio.ensure_future(asyncio.to_thread(self._hash_and_write, pieces))
        if not created:
            await self.settle()  # the file's creation (and the key's checks) before going on

    async def flush(self) -> None:
        await self.drain()
        await self.settle()

    async def finish(self) -> None:
        """Write what is left and commit the file, in one worker thread."""
        await self.settle()
        pieces, self._pending, self._pending_size = self._pending, [], 0

        def last_write_and_commit() -> None:
            self._hash_and_write(pieces)
            temporary = self._temporary
            assert temporary is not None  # made by the write just above if not before
            _commit(temporary.file, temp=temporary.temp, target=temporary.target)

        await asyncio.to_thread(last_write_and_commit)

    async def discard(self) -> None:
        """After a failure: the temporary file removed, once the thread is done with it."""
        with contextlib.suppress(Exception):
            await self.settle()
        temporary, self._temporary = self._temporary, None
        if temporary is not None:
            await asyncio.to_thread(_discard, temporary.file, temporary.temp)

    async def settle(self) -> None:
        """Wait for the batch in flight (its error, if any, is raised here)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight

    def _hash_and_write(self, pieces: list[bytes]) -> None:
        if self._temporary is None:
            self._temporary = self._create()
        file = self._temporary.file
        for piece in pieces:
            self.counter.update(piece)
            file.write(piece)
        # A large object's windows go to the disk as they are written, not all at the commit's
        # fsync (`storage.writeback`; nothing happens before the first window is full).
        file.flush()
        self._writeback.written(file.fileno(), self.counter.size)


@dataclass(frozen=True)
class _Temporary:
    """A blob's hidden temporary file, renamed over `target` when committed."""

    target: Path
    temp: Path
    file: BinaryIO


class LocalBlobStore:
    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.root = Path(root)
        self._chunk_size = chunk_size
        self._resolved_root: Path | None = None

    def path_for(self, key: str) -> Path:
        """The file of a key, refusing any key that would resolve outside the root."""
        validate_key(key)
        root = self._root()
        if _plain_below(root, key):
            # No symlink on the way (and no '.' or '..' in a valid key): the path is its own
            # resolution, found with an lstat per segment of the key instead of a realpath
            # walk from '/' (the crawl stages hundreds of small blobs).
            return Path(root, key)
        resolved_root = Path(root)
        path = (resolved_root / key).resolve()
        if not path.is_relative_to(resolved_root) or path == resolved_root:
            raise InvalidKey(f"storage key {key!r} resolves outside the storage directory")
        return path

    def _root(self) -> str:
        # The root is resolved once it exists (ten or so lstat calls each time otherwise); before
        # it exists a symlink could still be put in its place. Below it, every key's own segments
        # are checked each time (`_plain_below`), symlinks made since included.
        root = self._resolved_root
        if root is None:
            resolved = self.root.resolve()
            if resolved.is_dir():
                self._resolved_root = resolved
            root = resolved
        return str(root)

    @asynccontextmanager
    async def open_writer(self, key: str) -> AsyncIterator[LocalBlobWriter]:
        # The key's form is checked here; where it resolves (symlinks) and the file's creation
        # in the writer's first thread hop, off the event loop.
        validate_key(key)
        writer = LocalBlobWriter(functools.partial(self._create_temporary, key), self._chunk_size)
        try:
            yield writer
            await writer.finish()
        except BaseException:
            await writer.discard()
            raise
        writer.commit(writer.counter.result(key))

    def _create_temporary(self, key: str) -> _Temporary:
        target = self.path_for(key)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        return _Temporary(target, temp, _create_private_in_place(temp))

    async def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        opened = await asyncio.to_thread(self._open_range, key, start, end)
        if isinstance(opened, bytes):  # the whole range, read in the hop that opened the file
            if opened:
                yield opened
            return
        file, position, stop = opened
        # One chunk is read ahead in a worker thread while the caller uses the one it has.
        ahead: asyncio.Future[bytes] | None = None
        try:
            requested = position
            while position < stop:
                if ahead is None:
                    ahead = self._read_ahead(file, stop - requested)
                    requested += min(self._chunk_size, stop - requested)
                chunk = await ahead
                ahead = None
                if not chunk:
                    break
                position += len(chunk)
                if requested < stop:
                    ahead = self._read_ahead(file, stop - requested)
                    requested += min(self._chunk_size, stop - requested)
                yield chunk
        finally:
            if ahead is not None:  # the thread must be done with the file before it closes
                with contextlib.suppress(Exception):
                    await ahead
            file.close()

    def _open_range(
        self, key: str, start: int, end: int | None
    ) -> bytes | tuple[BinaryIO, int, int]:
        """In a worker thread: the key checked and its file opened at the range's start; a range
        that fits in one chunk (a staged attachment) is read whole and the file closed, so a
        small object costs one thread hop in all. Else the open file and the range's bounds."""
        path = self.path_for(key)
        try:
            file = open(path, "rb")  # noqa: SIM115 (closed below, or by open_reader)
        except FileNotFoundError:
            raise BlobNotFound(f"no stored object {key!r}") from None
        try:
            size = os.fstat(file.fileno()).st_size
            position, stop = check_range(key, size, start, end)
            file.seek(position)
            if stop - position > self._chunk_size:
                return file, position, stop  # read on, and closed, by open_reader
            whole = file.read(stop - position)
        except BaseException:
            file.close()
            raise
        file.close()
        return whole

    def _read_ahead(self, file: BinaryIO, left: int) -> asyncio.Future[bytes]:
        return asyncio.ensure_future(asyncio.to_thread(file.read, min(self._chunk_size, left)))

    # Resolving a key checks each of its segments on the disk (`path_for`): done in the same
    # thread hop as the operation, never on the event loop.
    async def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        return await asyncio.to_thread(self._stat, key)

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            info = self.path_for(key).stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return ObjectInfo(key=key, size=info.st_size, etag=f"{info.st_mtime_ns:x}-{info.st_size:x}")

    async def delete(self, key: str) -> None:
        validate_key(key)
        await asyncio.to_thread(lambda: self.path_for(key).unlink(missing_ok=True))

    async def delete_folder(self, prefix: str) -> None:
        validate_key(prefix)
        await asyncio.to_thread(lambda: _remove_folder(self.path_for(prefix)))

    async def presigned_url(self, key: str, expires_in: float) -> str | None:
        self.path_for(key)
        return None

    def staging_path(self, key: str) -> Path:
        target = self.path_for(key)
        return target.with_name(f".{target.name}.partial")

    async def commit_file(self, key: str, path: Path, *, sha256: str | None = None) -> StoredObject:
        target = self.path_for(key)
        source = Path(path)
        await asyncio.to_thread(target.parent.mkdir, mode=0o700, parents=True, exist_ok=True)
        try:
            size, digest = await asyncio.to_thread(_move_in, source, target, sha256)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            return await copy_file_in(self.open_writer, key, source, sha256, self._chunk_size)
        return StoredObject(key=key, size=size, sha256=digest)


def _plain_below(root: str, key: str) -> bool:
    """True when no segment of `key` under `root` is a symlink as of now: each one is a
    directory or file that is not a link, up to the first that does not exist (nothing below a
    missing one can exist). False when one is a link, or cannot be looked at."""
    path = root.rstrip("/")
    for segment in key.split("/"):
        path = f"{path}/{segment}"
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            return False
    return True


def _create_private_in_place(path: Path) -> BinaryIO:
    """A new file readable by its owner only (exports hold PHI), its directory made if need be."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _commit(file: BinaryIO, *, temp: Path, target: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(temp, target)
    _fsync_directory(target.parent)


def _remove_folder(folder: Path) -> None:
    """The folder and everything in it (symlinks removed, never followed); nothing if it is not
    a folder."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        shutil.rmtree(folder)


def _move_in(source: Path, target: Path, sha256: str | None) -> tuple[int, str]:
    """Rename `source` over `target`, its data and the new name on disk first; (size, sha256)."""
    os.chmod(source, 0o600)  # the store's files are owner-only, whoever made this one
    fd = os.open(source, os.O_RDONLY)
    try:
        digest = sha256.lower() if sha256 is not None else _sha256_of(fd)
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    os.replace(source, target)
    _fsync_directory(target.parent)
    return size, digest


def _sha256_of(fd: int) -> str:
    digest = hashlib.sha256()
    while block := os.read(fd, CHUNK_SIZE):
        digest.update(block)
    return digest.hexdigest()


def _discard(file: BinaryIO, temp: Path) -> None:
    with contextlib.suppress(OSError):
        file.close()
    temp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
