"""The periodic token refresher against the sandbox health systems over real HTTP.

`summit` hands out 60 s access tokens and `harbor` one-hour ones, so with the default margin
(300 s plus the time to the next run) only summit's connections are due.
"""

from __future__ import annotations

import datetime as dt

import psycopg

from ehiconnect.connections.models import ConnectionTokens
from ehiconnect.connections.tasks import refresh_expiring_connections, refresh_lookahead
from ehiconnect.connections.tokens import open_tokens
from ehiconnect.db.models import OrgConnection
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.settings import ConsentSettings, Settings
from tests.integration.consent.conftest import Platform


async def _state(
    runtime: Runtime, connection_id: str
) -> tuple[str, str | None, dt.datetime | None, int]:
    async with runtime.database.transaction() as session:
        connection = await session.get(OrgConnection, connection_id)
        row = await session.get(ConnectionTokens, connection_id)
        assert connection is not None
        if row is None:
            return connection.status, None, None, 0
        return (
            connection.status,
            open_tokens(runtime.cipher, row).access_token,
            row.access_expires_at,
            row.refresh_failures,
        )


def test_lookahead_covers_the_margin_and_the_wait_for_the_next_run() -> None:
    consent = ConsentSettings(token_refresh_margin_seconds=300, refresh_check_cron="*/5 * * * *")
    at = dt.datetime(2026, 11, 29, 3, 1, 30, tzinfo=dt.UTC)
    assert refresh_lookahead(consent, at) == dt.timedelta(seconds=300 + 210)
    hourly = ConsentSettings(token_refresh_margin_seconds=60, refresh_check_cron="0 * * * *")
    assert refresh_lookahead(hourly, at) == dt.timedelta(seconds=60 + 3510)


async def test_refreshes_connections_near_expiry_and_leaves_others_alone(
    platform: Platform, runtime: Runtime
) -> None:
    summit = platform.connect("summit", "carl")["org_connection_id"]
    harbor = platform.connect("harbor", "amy")["org_connection_id"]
    _, summit_token, summit_expiry, _ = await _state(runtime, summit)
    _, harbor_token, harbor_expiry, _ = await _state(runtime, harbor)

    report = await refresh_expiring_connections(runtime.connections)
    assert report.as_json() == {
        "selected": 1, "refreshed": 1, "revoked": 0, "deferred": 0, "failed": 0,
    }  # fmt: skip
    status, new_token, new_expiry, _ = await _state(runtime, summit)
    assert status == "authorized"
    assert new_token != summit_token
    assert summit_expiry is not None
    assert new_expiry is not None
    assert new_expiry > summit_expiry
    assert await _state(runtime, harbor) == ("authorized", harbor_token, harbor_expiry, 0)

    # Looking far enough ahead, harbor is due too; the batch limit bounds one run.
    bounded = await refresh_expiring_connections(
        runtime.connections, lookahead=dt.timedelta(hours=2), limit=1
    )
    assert bounded.selected == 1
    wider = await refresh_expiring_connections(runtime.connections, lookahead=dt.timedelta(hours=2))
    assert wider.selected == 2
    assert wider.refreshed == 2
    assert (await _state(runtime, harbor))[1] != harbor_token


async def test_a_refused_refresh_revokes_and_a_failing_source_is_retried_later(
    platform: Platform, runtime: Runtime, sandbox_state: SandboxState, database_url: str
) -> None:
    summit = platform.connect("summit", "carl")["org_connection_id"]
    sandbox_state.set_faults("summit", Faults(token_endpoint_faults=True, server_error_share=1.0))
    unavailable = await refresh_expiring_connections(runtime.connections)
    assert (unavailable.deferred, unavailable.revoked, unavailable.refreshed) == (1, 0, 0)
    status, _, _, failures = await _state(runtime, summit)
    assert (status, failures) == ("authorized", 1)

    sandbox_state.set_faults("summit", Faults(refresh_invalid_grant=True))
    refused = await refresh_expiring_connections(runtime.connections)
    assert (refused.revoked, refused.refreshed) == (1, 0)
    assert (await _state(runtime, summit))[0] == "revoked"
    with psycopg.connect(database_url) as conn:
        [(data,)] = conn.execute(
            "SELECT data FROM webhook_events WHERE type = 'patient.authorization_revoked'"
        ).fetchall()
    assert data["org_connection_id"] == summit
    # A revoked connection is not picked up again.
    assert (await refresh_expiring_connections(runtime.connections)).selected == 0


async def test_the_task_runs_in_a_worker(platform: Platform, settings: Settings) -> None:
    summit = platform.connect("summit", "carl")["org_connection_id"]
    worker_settings = settings.model_copy(deep=True)
    async with Runtime.open(worker_settings, migrate=False) as worker_runtime:
        _, before, _, _ = await _state(worker_runtime, summit)
        task = worker_runtime.jobs.tasks["connections:refresh_expiring"]
        job_id = await task.defer_async(timestamp=0)
        await worker_runtime.jobs.run_worker_async(
            wait=False,
            install_signal_handlers=False,
            additional_context=worker_runtime.job_context(),
        )
        status, after, _, _ = await _state(worker_runtime, summit)
    assert status == "authorized"
    assert after != before
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        row = conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row == ("succeeded",)
