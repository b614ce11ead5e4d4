"""Append to a large local file: straight to the disk where the file system allows it.

Used for the files of gigabytes this project writes in one pass: the platform's export file
(`exports/package.py`) and the tracker's lifted payloads (`tracker/payload_writer.py`).

Written through the page cache, every byte of a 4 GB export is copied into cache pages that are
then written out and dropped (`writeback.py` keeps that streaming): 1.6 s of CPU for 4.2 GB
here, on a machine whose two cores are also hashing, encoding and downloading. Opened with
`O_DIRECT`, the disk reads the bytes from our own buffer: 0.35-0.45 s of CPU for the same 4.2 GB
(the copy into that buffer included), and the disk kept pace (2.4-2.6 GB/s against 2.1-2.3 GB/s).

`O_DIRECT` wants the memory, the file offset and the length of each write aligned to the
device's block. `DirectAppender` gathers bytes in a page-aligned buffer and writes whole blocks;
the last, partial block stays in the buffer and is written again, with what follows it, by the
next write. `sync` makes the file hold every byte appended so far (the partial block written
padded, the file then cut to its length); `cut` goes back to an earlier length (a failed download
removed from the file).

`open_appender` falls back to `PageCacheAppender` (ordinary writes, `StreamedWriteback`) where
`O_DIRECT` does not exist or the file system refuses it at open; a file system that accepts the
flag but refuses an aligned read or write (a block larger than `ALIGN`) has it switched off for
the rest of the file.

Each method is called from one thread at a time (the caller's writing thread).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import mmap
import os
from pathlib import Path
from typing import Protocol

from ehiconnect.storage.writeback import StreamedWriteback

ALIGN = 4096  # a multiple of every block size in use (512 and 4096)
BUFFER = 2 << 20  # one write to the disk; a multiple of ALIGN
_FLUSH_EVERY = 16 << 20  # PageCacheAppender: how often written bytes are handed to the kernel
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # 0 where it does not exist (not Linux)

log = logging.getLogger(__name__)


@functools.cache
def _through_the_page_cache(reason: str) -> None:
    """Tell the operator once per process and reason: writing then costs more CPU."""
    log.info("large files are written through the page cache", extra={"reason": reason})


class Appender(Protocol):
    def append(self, data: bytes | bytearray) -> None: ...

    def sync(self) -> None:
        """The file holds every byte appended so far, and no more."""

    def cut(self, offset: int) -> None:
        """Cut the file back to `offset` bytes; appending goes on from there."""

    def close(self) -> None: ...


def open_appender(path: Path, offset: int, *, direct: bool = True) -> Appender:
    """Append to `path` from `offset` (its length: a new file is 0), the disk's way if it can."""
    if direct and _O_DIRECT:
        try:
            fd = os.open(path, os.O_RDWR | _O_DIRECT)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _through_the_page_cache("the file system refuses O_DIRECT")
        else:
            try:
                return DirectAppender(fd, offset)
            except BaseException:
                os.close(fd)
                raise
    return PageCacheAppender(os.open(path, os.O_RDWR), offset)


class DirectAppender:
    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        os.ftruncate(fd, offset)
        self._memory = mmap.mmap(-1, BUFFER)  # anonymous: page-aligned
        self._buffer = memoryview(self._memory)
        self._start = 0  # the file offset of the buffer's first byte (aligned)
        self._filled = 0
        self._resume_at(offset)

    def append(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            taken = min(BUFFER - self._filled, len(view))
            self._buffer[self._filled : self._filled + taken] = view[:taken]
            self._filled += taken
            view = view[taken:]
            if self._filled == BUFFER:
                self._write_whole_blocks()

    def sync(self) -> None:
        self._write_whole_blocks()
        if self._filled:  # the partial block, padded to a whole one, then cut to its length
            self._buffer[self._filled : ALIGN] = bytes(ALIGN - self._filled)
            self._write(self._buffer[:ALIGN], self._start)
        os.ftruncate(self._fd, self._start + self._filled)

    def cut(self, offset: int) -> None:
        self.sync()
        os.ftruncate(self._fd, offset)
        self._resume_at(offset)

    def close(self) -> None:
        if self._fd < 0:
            return
        self._buffer.release()
        self._memory.close()
        os.close(self._fd)
        self._fd = -1

    def _resume_at(self, offset: int) -> None:
        """Go on at `offset`: the bytes of its block before it back in the buffer."""
        self._start = offset - offset % ALIGN
        self._filled = offset - self._start
        if self._filled and self._read_block() < self._filled:
            raise OSError(errno.EIO, f"the file is shorter than the {offset} bytes to go on from")

    def _read_block(self) -> int:
        while True:
            try:
                return os.preadv(self._fd, [self._buffer[:ALIGN]], self._start)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self._leave_direct_io():
                    raise

    def _write_whole_blocks(self) -> None:
        whole = self._filled - self._filled % ALIGN
        if not whole:
            return
        self._write(self._buffer[:whole], self._start)
        tail = self._filled - whole  # less than a block: never overlaps what it is moved over
        self._buffer[:tail] = self._buffer[whole : self._filled]
        self._start += whole
        self._filled = tail

    def _write(self, blocks: memoryview, offset: int) -> None:
        done = 0
        while done < len(blocks):
            try:
                written = os.pwrite(self._fd, blocks[done:], offset + done)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self._leave_direct_io():
                    raise
                continue
            if not written:
                raise OSError(errno.EIO, f"the disk took none of {len(blocks) - done} bytes")
            done += written

    def _leave_direct_io(self) -> bool:
        """The file system took `O_DIRECT` at open but refuses its reads or writes: go through
        the page cache from now on (the final fsync then writes it all). False if it was off."""
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        if not flags & _O_DIRECT:
            return False
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_O_DIRECT)
        _through_the_page_cache("the file system refuses O_DIRECT reads or writes")
        return True


class PageCacheAppender:
    def __init__(self, fd: int, offset: int) -> None:
        """Takes `fd`: closed by `close`, or here when the appender cannot be made (its caller
        must not close it again: the number may already belong to another file)."""
        try:
            self._file = os.fdopen(fd, "r+b")
        except BaseException:
            os.close(fd)
            raise
        try:
            self._file.truncate(offset)
            self._file.seek(offset)
        except BaseException:
            self._file.close()
            raise
        self._offset = offset
        self._flushed = offset
        self._writeback = StreamedWriteback(offset)

    def append(self, data: bytes | bytearray) -> None:
        self._file.write(data)
        self._offset += len(data)
        if self._offset - self._flushed >= _FLUSH_EVERY:
            self._flushed = self._offset
            self._file.flush()
            self._writeback.written(self._file.fileno(), self._offset)

    def sync(self) -> None:
        self._file.flush()

    def cut(self, offset: int) -> None:
        self._file.flush()
        self._file.truncate(offset)
        self._file.seek(offset)
        self._offset = offset
        self._flushed = min(self._flushed, offset)
        self._writeback.reset(offset)

    def close(self) -> None:
        self._file.close()
