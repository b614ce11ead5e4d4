"""The embedded PostgreSQL: stopped and started again within one process."""

from __future__ import annotations

from pathlib import Path

import psycopg

from ehiconnect.db.embedded import ensure_embedded_postgres, stop_embedded_postgres


def test_a_stopped_embedded_server_starts_again_in_the_same_process(tmp_path: Path) -> None:
    for _ in range(2):
        url = ensure_embedded_postgres(tmp_path)
        with psycopg.connect(url) as connection:
            assert connection.execute("select 1").fetchone() == (1,)
        assert stop_embedded_postgres(tmp_path)
    assert not stop_embedded_postgres(tmp_path)  # nothing left running
