"""Everything a process needs at run time, built once from the settings in the entry point.

async with Runtime.open(settings) as runtime:
    ...  # runtime.database, runtime.jobs, runtime.clock, runtime.settings
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import procrastinate

from ehiconnect.clock import Clock, SystemClock
from ehiconnect.db.database import Database
from ehiconnect.db.migrate import upgrade_database
from ehiconnect.db.urls import resolve_database_url
from ehiconnect.jobs.app import build_job_app
from ehiconnect.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database: Database
    jobs: procrastinate.App
    clock: Clock

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True
    ) -> AsyncIterator[Runtime]:
        url = database_url(settings)
        if migrate:
            upgrade_database(url)
        database = Database(url)
        jobs = build_job_app(url, settings)
        try:
            async with jobs.open_async():
                yield cls(
                    settings=settings, database=database, jobs=jobs, clock=clock or SystemClock()
                )
        finally:
            await database.close()


def database_url(settings: Settings) -> str:
    configured = settings.database_url.get_secret_value() if settings.database_url else None
    return resolve_database_url(configured, settings.data_dir)
