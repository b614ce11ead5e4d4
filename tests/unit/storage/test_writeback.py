"""The export file's writeback: how far the writer may get ahead of the disk."""

from __future__ import annotations

import pytest

from ehiconnect.storage import writeback
from ehiconnect.storage.writeback import LAG, StreamedWriteback

WINDOW = 100


class Calls:
    def __init__(self) -> None:
        self.started: list[tuple[int, int]] = []
        self.waited: list[tuple[int, int]] = []

    def __call__(self, fd: int, start: int, length: int, flags: int) -> int:
        (self.waited if flags & 1 else self.started).append((start, start + length))
        return 0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorder = Calls()
    monkeypatch.setattr(writeback, "_sync_file_range", recorder)
    monkeypatch.setattr("os.posix_fadvise", lambda *args: None)
    return recorder


def test_each_window_goes_to_the_disk_once_written_and_is_waited_for_lag_windows_later(
    calls: Calls,
) -> None:
    wb = StreamedWriteback(window=WINDOW)
    for end in range(50, 1001, 50):  # 20 writes of 50 bytes: 10 windows
        wb.written(0, end)
    windows = [(start, start + WINDOW) for start in range(0, 1000, WINDOW)]
    assert calls.started == windows
    # The disk may be LAG windows behind the writer; the window before those is waited for.
    assert calls.waited == windows[: len(windows) - LAG]


def test_a_cut_back_file_waits_for_no_window_written_before_the_cut(calls: Calls) -> None:
    wb = StreamedWriteback(window=WINDOW)
    for end in (100, 200, 300):
        wb.written(0, end)
    wb.reset(150)  # a failed attachment's line cut back out
    for end in (250, 350, 450, 550):
        wb.written(0, end)
    # (100, 200) and (200, 300) were cut away: not waited for; the file goes on from 150.
    assert calls.waited == [(0, 100), (150, 250), (250, 350)]
    assert calls.started[-4:] == [(150, 250), (250, 350), (350, 450), (450, 550)]
