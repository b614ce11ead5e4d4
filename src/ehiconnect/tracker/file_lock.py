"""An exclusive advisory lock on an open file: one tracker process writes a download or a lifted
payload at a time (a second one, finding it held, stops and leaves the file to the first)."""

from __future__ import annotations

import sys


def try_lock(fd: int) -> bool:
    """Lock the open file exclusively, without waiting; False when another process holds it.
    On Windows (no flock) it always succeeds: nothing guards a double run there, and the
    sha256 checks still catch interleaved writes."""
    if sys.platform == "win32":
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
