"""Everything a process needs at run time, built once from the settings in the entry point.

async with Runtime.open(settings) as runtime:
    ...  # runtime.database, runtime.jobs, runtime.clock, runtime.settings
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import procrastinate

from ehiconnect import __version__
from ehiconnect.clock import Clock, SystemClock
from ehiconnect.connections.vault import TokenCipher, cipher_from_config
from ehiconnect.consent.client_keys import ClientSigner, load_signer
from ehiconnect.db.database import Database
from ehiconnect.db.migrate import upgrade_database
from ehiconnect.db.urls import resolve_database_url
from ehiconnect.exports.blobs import build_blob_store
from ehiconnect.exports.storage.port import BlobStore
from ehiconnect.jobs.app import build_job_app
from ehiconnect.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database: Database
    jobs: procrastinate.App
    clock: Clock
    cipher: TokenCipher
    http: httpx.AsyncClient
    client_signer: ClientSigner
    blobs: BlobStore

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True
    ) -> AsyncIterator[Runtime]:
        url = database_url(settings)
        if migrate:
            upgrade_database(url)
        cipher = build_cipher(settings)
        database = Database(url)
        jobs = build_job_app(url, settings)
        try:
            async with jobs.open_async(), outbound_client(settings) as http:
                yield cls(
                    settings=settings,
                    database=database,
                    jobs=jobs,
                    clock=clock or SystemClock(),
                    cipher=cipher,
                    http=http,
                    client_signer=load_signer(settings.data_dir),
                    blobs=build_blob_store(settings),
                )
        finally:
            await database.close()


def outbound_client(settings: Settings) -> httpx.AsyncClient:
    """The client for calls to health systems' authorization servers (not webhooks: see http/)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.consent.http_timeout_seconds),
        follow_redirects=False,
        headers={"User-Agent": f"ehiconnect/{__version__}"},
    )


def build_cipher(settings: Settings) -> TokenCipher:
    return cipher_from_config(
        {kid: key.get_secret_value() for kid, key in settings.vault.keys.items()},
        settings.vault.active_kid,
        settings.data_dir,
    )


def database_url(settings: Settings) -> str:
    configured = settings.database_url.get_secret_value() if settings.database_url else None
    return resolve_database_url(configured, settings.data_dir)
