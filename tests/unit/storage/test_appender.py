"""The appender of large files (the export file, lifted payloads): whatever the sizes appended,
the cuts and the restarts, the file holds exactly the bytes appended, straight to the disk
(`O_DIRECT`) or through the page cache."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ehiconnect.storage import appender as appender_module
from ehiconnect.storage.appender import (
    ALIGN,
    BUFFER,
    Appender,
    DirectAppender,
    PageCacheAppender,
    open_appender,
)

DIRECT = pytest.mark.parametrize("direct", [True, False], ids=["direct", "page-cache"])
# Around a block, around the buffer, and several buffers at once.
SIZES = [1, ALIGN - 1, 2, ALIGN, BUFFER - 3, 7, BUFFER, 3 * BUFFER + 5, 0, 100]


def _direct_io_works(path: Path) -> bool:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | flag, 0o600))
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    return True


def _refusing_direct_io(real: Callable[..., int]) -> Callable[..., int]:
    """`real`, failing with EINVAL while the file is open with O_DIRECT: a file system that
    takes the flag at open and refuses the reads or writes."""

    def call(fd: int, *args: Any) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, *args)

    return call


@contextlib.contextmanager
def _appending(path: Path, offset: int, direct: bool) -> Iterator[Appender]:
    out = open_appender(path, offset, direct=direct)
    try:
        yield out
    finally:
        out.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "export.ndjson"
    file.touch()
    return file


@pytest.fixture
def direct_io_path(path: Path) -> Path:
    """`path`, on a file system that takes O_DIRECT (the test is skipped elsewhere)."""
    if not _direct_io_works(path):
        pytest.skip("this file system refuses O_DIRECT")
    return path


def test_the_disk_s_way_is_taken_where_the_file_system_allows_it(direct_io_path: Path) -> None:
    with _appending(direct_io_path, 0, direct=True) as out:
        assert isinstance(out, DirectAppender)
    with _appending(direct_io_path, 0, direct=False) as out:
        assert isinstance(out, PageCacheAppender)


@DIRECT
def test_after_each_sync_the_file_holds_exactly_what_was_appended(path: Path, direct: bool) -> None:
    expected = b""
    with _appending(path, 0, direct) as out:
        for size in SIZES:
            data = os.urandom(size)
            out.append(data)
            expected += data
            out.sync()
            assert path.read_bytes() == expected
    assert path.read_bytes() == expected


@DIRECT
def test_a_cut_drops_what_follows_and_appending_goes_on_from_there(
    path: Path, direct: bool
) -> None:
    head = os.urandom(BUFFER + ALIGN + 11)  # the cut falls inside a block already written
    with _appending(path, 0, direct) as out:
        out.append(head)
        out.append(os.urandom(BUFFER))
        out.cut(BUFFER + 5)
        out.append(b"after the first cut")
        out.append(os.urandom(ALIGN * 3))
        out.cut(BUFFER + 5 + 6)  # inside bytes still held, never written whole
        out.append(b"and the second")
        out.sync()
    assert path.read_bytes() == head[: BUFFER + 5] + b"after " + b"and the second"


@DIRECT
def test_a_resumed_file_keeps_what_is_before_the_offset_and_nothing_after(
    path: Path, direct: bool
) -> None:
    before = os.urandom(3 * ALIGN + 123)
    path.write_bytes(before + b"a killed run's last, unchecked bytes")
    with _appending(path, len(before), direct) as out:
        out.append(b"the rest")
        out.sync()
    assert path.read_bytes() == before + b"the rest"


@pytest.mark.parametrize("refused", ["pwrite", "preadv"], ids=["writes", "reads"])
def test_a_file_system_refusing_direct_io_gets_it_through_the_page_cache(
    direct_io_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    refused: str,
) -> None:
    """Resumed mid-block (a read) and then written past a whole buffer (writes): whichever the
    file system refuses, the rest goes through the page cache, and the operator is told."""
    monkeypatch.setattr(os, refused, _refusing_direct_io(getattr(os, refused)))
    appender_module._through_the_page_cache.cache_clear()
    before, data = os.urandom(ALIGN + 10), os.urandom(BUFFER + ALIGN + 17)
    direct_io_path.write_bytes(before)
    with caplog.at_level(logging.INFO), _appending(direct_io_path, len(before), True) as out:
        out.append(data)
        out.sync()
    assert direct_io_path.read_bytes() == before + data
    assert "large files are written through the page cache" in caplog.messages


def _disk_full(fd: int, data: memoryview, offset: int) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def _takes_nothing(fd: int, data: memoryview, offset: int) -> int:
    return 0


@pytest.mark.parametrize(
    ("pwrite", "error"),
    [(_disk_full, "No space"), (_takes_nothing, "took none")],
    ids=["disk full", "nothing written"],
)
def test_another_write_failure_is_raised(
    direct_io_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pwrite: Callable[[int, memoryview, int], int],
    error: str,
) -> None:
    monkeypatch.setattr(os, "pwrite", pwrite)
    with _appending(direct_io_path, 0, direct=True) as out:
        out.append(b"x")
        with pytest.raises(OSError, match=error):
            out.sync()


def test_an_appender_that_cannot_take_its_file_closes_the_descriptor_itself(path: Path) -> None:
    # Read-only: the appender's first cut of the file fails. Its caller must not close the
    # descriptor again (by then the number may be another file's), so the appender closes it.
    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(OSError, match="Invalid argument") as failed:
        PageCacheAppender(fd, 0)
    # Closed now, not whenever the collector frees what the failure's traceback still holds.
    assert failed.traceback
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
