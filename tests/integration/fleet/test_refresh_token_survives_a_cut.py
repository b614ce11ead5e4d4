"""A refresh token the health system rotated is kept even when the refresh's own transaction dies.

Refresh tokens rotate: once the health system answers a refresh, the old refresh token is dead
there. The refresh runs in a transaction that holds the connection's lock; if that transaction
cannot commit (its database connection is cut, as `pg_terminate_backend` or a failover does, or
the process is killed), the new refresh token must not go down with it, or the next refresh
presents the dead one, is refused, and the connection is revoked. Seen in bench/fleet.py --chaos:
a summit export failed `token_refresh_failure` ("the connection was revoked before the export
ran") after worker kills during a run with 60 s access tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time

import psycopg

from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tokens import fresh_access_token, open_tokens
from ehiconnect.db.models import OrgConnection
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from tests.integration.consent.conftest import Platform

MARGIN = dt.timedelta(seconds=300)


async def _stored(runtime: Runtime, connection_id: str) -> tuple[str | None, str]:
    async with runtime.database.transaction() as session:
        row = await session.get(ConnectionTokens, connection_id)
        connection = await session.get(OrgConnection, connection_id)
        assert row is not None
        assert connection is not None
        return open_tokens(runtime.cipher, row).refresh_token, connection.status


async def _refresh(runtime: Runtime, connection_id: str) -> str:
    return await fresh_access_token(
        runtime.database,
        runtime.cipher,
        runtime.clock,
        runtime.http,
        runtime.jobs,
        connection_id,
        margin=MARGIN,
        force=True,
    )


def _cut_the_lock_holder(database_url: str, done: threading.Event) -> list[int]:
    """Terminate the backend holding the refresh's lock while it waits for the health system.

    That is the backend holding an advisory lock and idle in its transaction for a while (the
    token request takes a second); cutting it earlier would stop the refresh before it is sent.
    """
    cut: list[int] = []
    deadline = time.monotonic() + 20
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not cut and not done.is_set() and time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() "
                "AND a.state = 'idle in transaction' "
                "AND a.state_change < now() - interval '300 milliseconds'"
            ).fetchall()
            for (pid,) in rows:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                cut.append(int(pid))
            time.sleep(0.02)
    return cut


async def test_a_rotated_refresh_token_survives_its_transaction_being_cut(
    platform: Platform, runtime: Runtime, sandbox_state: SandboxState, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    old_refresh, _ = await _stored(runtime, connection_id)
    assert old_refresh is not None

    # The token endpoint takes a second to answer: time to cut the refresh's connection.
    sandbox_state.set_faults("harbor", Faults(latency_ms=1000, token_endpoint_faults=True))
    done = threading.Event()
    cutter = asyncio.create_task(asyncio.to_thread(_cut_the_lock_holder, database_url, done))
    with contextlib.suppress(Exception):  # the cut transaction may fail; the token must not
        await _refresh(runtime, connection_id)
    done.set()
    assert await cutter, "no refresh transaction was seen holding the connection's lock"
    sandbox_state.set_faults("harbor", Faults())

    stored_refresh, _ = await _stored(runtime, connection_id)
    assert stored_refresh != old_refresh, "the rotated refresh token was lost with the transaction"
    # And the connection keeps working: the next refresh presents a token the source knows.
    await _refresh(runtime, connection_id)
    _, status = await _stored(runtime, connection_id)
    assert status == "authorized"
