"""Write a lifted payload into the store, its sha256 and its write on two threads at once.

The store's writer (`BlobStore.open_writer`) hashes and then writes each chunk in one worker
thread; for a 3 GB attachment that serial pair is the lift's slowest stage (sha256 ~1.7 GB/s,
then the copy into the page cache). A store that keeps files on local disk offers
`staging_path(key)`: there the payload is built in place, each block of decoded bytes hashed in
one worker thread while another writes it (both release the GIL), and `commit_file(key, path,
sha256=...)` renames the finished file over the key, trusting the digest computed here (the
bytes it moves are the ones hashed). A store without local staging (S3, memory) takes the
payload through its writer.

The staging file is written by `storage.appender`: straight to the disk from an aligned buffer
(`O_DIRECT`) where the file system allows it, else through the page cache with each window handed
to the disk as it is written. Through the page cache, a payload of gigabytes piled up dirty pages
that the kernel then wrote at a fraction of the disk's speed (this VM: 310 MB/s written and
fsynced that way, 1.4 GB/s with `O_DIRECT`, `dd` of 2 GB each), and every byte was copied once
more, into the cache.

`write` returns once this block is handed over and at most one other is still being hashed or
written (each stage's thread takes its blocks in order): two blocks in flight, so memory stays
flat. The staging file has the same name every time, so a
lift killed mid-payload leaves one file that the next run truncates and writes again; an
exclusive lock on it keeps two runs of the same job from writing it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from ehiconnect.storage.appender import Appender, open_appender
from ehiconnect.storage.port import BlobStore, BlobWriter, StorageError, StoredObject
from ehiconnect.tracker.file_lock import try_lock

_T = TypeVar("_T")
_BLOCKS_IN_FLIGHT = 2  # blocks handed to the hash and write threads and not yet done with


class LiftBusy(StorageError):
    """Another run is writing the same lifted payload right now."""


class PayloadWriter(Protocol):
    async def write(self, pieces: Sequence[bytes], /) -> None: ...

    async def commit(self) -> StoredObject:
        """Make the payload the object; its key, size and sha256."""
        ...

    async def discard(self, error: BaseException) -> None:
        """Leave nothing behind (the lift failed with `error`)."""
        ...


class Stages:
    """The lift's own worker threads, one per stage (decode, hash, write), for one lift.

    Each stage runs its blocks in order on one thread of its own, instead of any thread of the
    event loop's shared pool: a pool thread that has handled every kind of block keeps freed
    megabyte buffers in its own malloc arena, so a lift touching the loop's six threads grew
    the process by ~80 MiB where three threads hold ~35 MiB. `close()` ends them.
    """

    def __init__(self) -> None:
        self.decode = ThreadPoolExecutor(1, thread_name_prefix="lift-decode")
        self.hash = ThreadPoolExecutor(1, thread_name_prefix="lift-hash")
        self.write = ThreadPoolExecutor(1, thread_name_prefix="lift-write")

    def close(self) -> None:
        for pool in (self.decode, self.hash, self.write):
            pool.shutdown()  # (their blocks are settled by then: the threads only exit)


def run_in(pool: Executor, function: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
    """`function(*args)` on `pool`, as a future of the running loop."""
    return asyncio.get_running_loop().run_in_executor(pool, function, *args)


async def open_payload(blobs: BlobStore, key: str, stages: Stages | None = None) -> PayloadWriter:
    """A writer for the payload object `key`: built in place when the store stages locally,
    hashing and writing on `stages` (threads of its own when not given)."""
    path = blobs.staging_path(key)
    if path is None:
        return await _StreamedPayload.open(blobs, key)
    return await _StagedPayload.open(blobs, key, path, stages)


class _StreamedPayload:
    """Through the store's own writer, which commits when its block exits cleanly."""

    def __init__(self, scope: contextlib.AsyncExitStack, writer: BlobWriter) -> None:
        self._scope = scope
        self._writer = writer

    @classmethod
    async def open(cls, blobs: BlobStore, key: str) -> _StreamedPayload:
        scope = contextlib.AsyncExitStack()
        writer = await scope.enter_async_context(blobs.open_writer(key))
        return cls(scope, writer)

    async def write(self, pieces: Sequence[bytes], /) -> None:
        for piece in pieces:
            await self._writer.write(piece)

    async def commit(self) -> StoredObject:
        await self._scope.aclose()
        return self._writer.stored

    async def discard(self, error: BaseException) -> None:
        await self._scope.__aexit__(type(error), error, error.__traceback__)


class _StagedPayload:
    """In the store's staging file: hashed on one thread while written on another."""

    def __init__(
        self,
        blobs: BlobStore,
        key: str,
        path: Path,
        opened: tuple[int, Appender],
        stages: Stages | None,
    ) -> None:
        self._own_stages = stages is None
        self._stages = stages or Stages()
        self._blobs = blobs
        self._key = key
        self._path = path
        self._fd, self._appender = opened  # the locked descriptor; the writes' own
        self._digest = hashlib.sha256()
        self._in_flight: deque[tuple[asyncio.Future[None], asyncio.Future[None]]] = deque()

    @classmethod
    async def open(
        cls, blobs: BlobStore, key: str, path: Path, stages: Stages | None
    ) -> _StagedPayload:
        opened = await asyncio.to_thread(_open_locked_empty, path, key)
        return cls(blobs, key, path, opened, stages)

    async def write(self, pieces: Sequence[bytes], /) -> None:
        # Each stage's thread takes its blocks in order, so a second block may wait in its queue:
        # the hash thread, the slowest, finds the next block there instead of waiting for the
        # event loop to hand it over.
        while len(self._in_flight) >= _BLOCKS_IN_FLIGHT:
            await _outcome(self._in_flight.popleft())
        self._in_flight.append(
            (
                run_in(self._stages.hash, self._hash, pieces),
                run_in(self._stages.write, _append_all, self._appender, pieces),
            )
        )

    async def commit(self) -> StoredObject:
        """The object; on an error the file stays open and locked for `discard`."""
        await self._settle()
        # The last partial block written, the file cut to its length (`commit_file` fsyncs it).
        await run_in(self._stages.write, self._appender.sync)
        # The lock is held until the rename: no other run can truncate the file under it.
        stored = await self._blobs.commit_file(
            self._key, self._path, sha256=self._digest.hexdigest()
        )
        self._close()
        return stored

    async def discard(self, error: BaseException) -> None:
        with contextlib.suppress(Exception):
            await self._settle()  # the threads must be done with the file before it goes
        await asyncio.to_thread(self._path.unlink, missing_ok=True)  # (still locked: ours)
        self._close()

    def _close(self) -> None:
        """Close the file once (a second close could hit a descriptor reused since)."""
        if self._own_stages:
            self._stages.close()
        with contextlib.suppress(OSError):
            self._appender.close()  # (closes once: a second call does nothing)
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _hash(self, pieces: Sequence[bytes]) -> None:
        for piece in pieces:
            self._digest.update(piece)

    async def _settle(self) -> None:
        """Wait for both threads of every block in flight; then raise the first error, if any."""
        in_flight = [future for pair in self._in_flight for future in pair]
        self._in_flight.clear()
        await _outcome(in_flight)


async def _outcome(futures: Sequence[asyncio.Future[None]]) -> None:
    """Wait for all of `futures`, then raise the first error, if any."""
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _open_locked_empty(path: Path, key: str) -> tuple[int, Appender]:
    """The staging file, owner-only (it holds PHI), locked and emptied of any earlier run: the
    locked descriptor (kept until the rename) and the appender that writes it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    if not try_lock(fd):
        os.close(fd)
        raise LiftBusy(
            f"another run is lifting {key!r} right now (the same job running twice?); "
            "this one stops and leaves the payload to it"
        )
    try:
        return fd, open_appender(path, 0)  # (emptied: appending from 0 cuts the file there)
    except BaseException:
        os.close(fd)
        raise


def _append_all(appender: Appender, pieces: Sequence[bytes]) -> None:
    for piece in pieces:
        appender.append(piece)
