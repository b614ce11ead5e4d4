"""The embedded PostgreSQL: stopped and started again within one process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ehiconnect.db.embedded import ensure_embedded_postgres, stop_embedded_postgres


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: run as root, the server runs as its own user, which cannot cross
    # pytest's base directory (mode 0700); a directory of its own under the system temp can be
    # handed to it (as the suite's shared server does, tests/integration/conftest.py).
    path = Path(tempfile.mkdtemp(prefix="ehiconnect-embedded-"))
    try:
        yield path
    finally:
        stop_embedded_postgres(path)
        shutil.rmtree(path, ignore_errors=True)


def test_a_stopped_embedded_server_starts_again_in_the_same_process(data_dir: Path) -> None:
    for _ in range(2):
        url = ensure_embedded_postgres(data_dir)
        with psycopg.connect(url) as connection:
            assert connection.execute("select 1").fetchone() == (1,)
        assert stop_embedded_postgres(data_dir)
    assert not stop_embedded_postgres(data_dir)  # nothing left running
