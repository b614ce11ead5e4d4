"""How many PostgreSQL connections a process may hold, by what it is: the connection budget.

Every process has a main pool (SQLAlchemy: API requests, job bodies, the webhook dispatcher) and
the job queue's pool (procrastinate: fetching, finishing and heartbeating jobs). A worker also
holds two dedicated LISTEN connections: the job queue's and the webhook dispatcher's. All of them
carry an `application_name` naming the process's role, so an operator sees in `pg_stat_activity`
who holds what:

    SELECT application_name, count(*) FROM pg_stat_activity GROUP BY 1;

The defaults size a worker's main pool from its concurrency (one connection per running job, two
for the dispatcher and periodic maintenance) with no overflow: a job that wants a second
connection at the same moment waits for one (`db.pool_timeout_seconds`) instead of opening more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ehiconnect.db.roles import ProcessRole as ProcessRole  # its home; imported from here too
from ehiconnect.settings import DatabaseSettings

API_POOL_SIZE = 10
POOL_ABOVE_CONCURRENCY = 2  # the webhook dispatcher and periodic maintenance, beside the jobs
WORKER_JOBS_POOL_SIZE = 3  # fetch loop, finishing jobs, heartbeat; queries of milliseconds
OTHER_JOBS_POOL_SIZE = 1  # deferring happens on the caller's own connection
WORKER_LISTENERS = 2  # procrastinate's LISTEN connection and the webhook dispatcher's
WEBHOOK_LISTENER_NAME = "ehiconnect webhooks listener"  # set in webhooks/wakeup.py


# The roles that serve a fleet: they record and compare the settings every process must share.
FLEET_ROLES = (ProcessRole.API, ProcessRole.WORKER)


@dataclass(frozen=True)
class PoolPlan:
    """The connections one process may open; `total` is its share of `max_connections`."""

    role: ProcessRole
    pool_size: int
    max_overflow: int
    jobs_pool_size: int
    listeners: int

    @property
    def total(self) -> int:
        return self.pool_size + self.max_overflow + self.jobs_pool_size + self.listeners


def plan_pools(role: ProcessRole, settings: DatabaseSettings, concurrency: int) -> PoolPlan:
    """The budget of a process in `role` whose worker (if any) runs `concurrency` jobs at once."""
    runs_jobs = role is not ProcessRole.API
    default_pool = concurrency + POOL_ABOVE_CONCURRENCY if runs_jobs else API_POOL_SIZE
    default_jobs_pool = (
        WORKER_JOBS_POOL_SIZE
        if role in (ProcessRole.WORKER, ProcessRole.CLI)
        else OTHER_JOBS_POOL_SIZE
    )
    return PoolPlan(
        role=role,
        pool_size=settings.pool_size or default_pool,
        max_overflow=settings.max_overflow,
        jobs_pool_size=settings.jobs_pool_size or default_jobs_pool,
        listeners=WORKER_LISTENERS if role is ProcessRole.WORKER else 0,
    )


def session_options(role: ProcessRole, settings: DatabaseSettings) -> dict[str, Any]:
    """libpq connection parameters every connection of the process carries."""
    options: dict[str, Any] = {
        "application_name": role.application_name,
        "connect_timeout": settings.connect_timeout_seconds,
    }
    if settings.statement_timeout_ms is not None:
        options["options"] = f"-c statement_timeout={settings.statement_timeout_ms}"
    return options


def job_pool_options(
    role: ProcessRole, settings: DatabaseSettings, concurrency: int
) -> dict[str, Any]:
    """Keyword arguments of procrastinate's PsycopgConnector (its psycopg_pool) for `role`."""
    plan = plan_pools(role, settings, concurrency)
    return {
        # One connection stays open: it is how other processes see this one is alive (the fleet
        # settings check) and spares the first job a connect.
        "min_size": 1,
        "max_size": plan.jobs_pool_size,
        "timeout": settings.pool_timeout_seconds,
        "kwargs": session_options(role, settings),
    }
