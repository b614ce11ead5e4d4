"""The connection budget per process role: what docs/deploy.md's formula promises."""

from __future__ import annotations

import pytest

from ehiconnect.db.pools import ProcessRole, job_pool_options, plan_pools, session_options
from ehiconnect.settings import DatabaseSettings


@pytest.mark.parametrize("concurrency", [1, 2, 4, 16])
def test_a_workers_budget_follows_its_concurrency(concurrency: int) -> None:
    plan = plan_pools(ProcessRole.WORKER, DatabaseSettings(), concurrency)
    assert plan.pool_size == concurrency + 2
    assert plan.max_overflow == 0
    assert plan.total == concurrency + 7  # + 3 for the job queue, + 2 LISTEN connections


def test_an_api_process_holds_at_most_eleven_by_default_whatever_the_concurrency() -> None:
    for concurrency in (1, 4, 32):
        assert plan_pools(ProcessRole.API, DatabaseSettings(), concurrency).total == 11


def test_explicit_settings_win_over_the_role_defaults() -> None:
    settings = DatabaseSettings(pool_size=5, max_overflow=2, jobs_pool_size=2)
    plan = plan_pools(ProcessRole.WORKER, settings, 16)
    assert (plan.pool_size, plan.max_overflow, plan.jobs_pool_size) == (5, 2, 2)
    assert plan.total == 5 + 2 + 2 + 2


def test_every_connection_names_its_role_and_carries_the_timeouts() -> None:
    settings = DatabaseSettings(statement_timeout_ms=30_000, connect_timeout_seconds=5)
    options = session_options(ProcessRole.WORKER, settings)
    assert options == {
        "application_name": "ehiconnect-worker",
        "connect_timeout": 5,
        "options": "-c statement_timeout=30000",
    }
    assert "options" not in session_options(ProcessRole.API, DatabaseSettings())
    jobs = job_pool_options(ProcessRole.API, settings, 4)
    assert jobs["max_size"] == 1
    assert jobs["kwargs"]["application_name"] == "ehiconnect-api"
