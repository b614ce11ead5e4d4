"""Everything a process needs at run time, built once from the settings in the entry point.

async with Runtime.open(settings, role=ProcessRole.WORKER) as runtime:
    ...  # runtime.database, runtime.jobs, runtime.clock, runtime.settings

The role sizes the connection pools (`db.pools`) and names the process in `pg_stat_activity`.
Opening checks the settings every process of a fleet must share (`ehiconnect.fleet`) and loads
the fleet's one private_key_jwt signing key from the database.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import procrastinate

from ehiconnect import __version__
from ehiconnect.clock import Clock, SystemClock
from ehiconnect.connections.ports import ConnectionPorts
from ehiconnect.connections.refresh_policy import RefreshMargin
from ehiconnect.connections.tokens import fresh_access_token
from ehiconnect.consent.ports import ConsentPorts
from ehiconnect.db.database import Database
from ehiconnect.db.migrate import upgrade_database
from ehiconnect.db.pools import ProcessRole, plan_pools, session_options
from ehiconnect.db.urls import resolve_database_url
from ehiconnect.exports.ports import ExportPorts
from ehiconnect.fleet import check_fleet_settings
from ehiconnect.http.ssrf import SOURCE_REMEDY, GuardedTransport
from ehiconnect.queue.context import provide
from ehiconnect.settings import Settings
from ehiconnect.smart.client_keys import ClientSigner, load_client_signer
from ehiconnect.storage.build import build_blob_store
from ehiconnect.storage.port import BlobStore
from ehiconnect.task_registry import build_job_app
from ehiconnect.vault import TokenCipher, cipher_from_config
from ehiconnect.webhooks.ports import WebhookPorts


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

    def job_context(self) -> dict[str, Any]:
        """What a worker hands its tasks: each feature's ports and the queue's own settings
        (`queue.context.ports_of`). The runtime itself is there too, for tasks that tests and
        plug-ins register (`jobs.extra_task_modules`): the platform's own never ask for it."""
        return provide(self, self.settings.jobs, *self.feature_ports())

    def feature_ports(self) -> tuple[object, ...]:
        """Each feature's ports, built from this runtime (one line per feature)."""
        return (
            self.consent,
            self.connections,
            self.exports,
            self.webhooks,
        )

    @functools.cached_property
    def consent(self) -> ConsentPorts:
        return ConsentPorts(
            database=self.database,
            jobs=self.jobs,
            clock=self.clock,
            cipher=self.cipher,
            http=self.http,
            client_signer=self.client_signer,
            settings=self.settings.consent,
            public_base_url=self.settings.public_base_url,
        )

    @functools.cached_property
    def connections(self) -> ConnectionPorts:
        return ConnectionPorts(
            database=self.database,
            jobs=self.jobs,
            clock=self.clock,
            cipher=self.cipher,
            http=self.http,
            client_signer=self.client_signer,
            settings=self.settings.consent,
        )

    @functools.cached_property
    def webhooks(self) -> WebhookPorts:
        return WebhookPorts(
            database=self.database,
            clock=self.clock,
            cipher=self.cipher,
            settings=self.settings.webhooks,
        )

    @functools.cached_property
    def exports(self) -> ExportPorts:
        return ExportPorts(
            database=self.database,
            jobs=self.jobs,
            clock=self.clock,
            blobs=self.blobs,
            settings=self.settings.exports,
            public_base_url=self.settings.public_base_url,
            access_token=self.export_access_token,
        )

    async def export_access_token(self, org_connection_id: str, rejected: str | None) -> str:
        """A connection's access token for an export's requests, renewed as the connections
        feature does (its refresh margin, from the consent settings)."""
        consent = self.settings.consent
        margin = RefreshMargin(
            consent.token_refresh_margin_seconds, consent.token_refresh_margin_fraction
        )
        return await fresh_access_token(
            self.database,
            self.cipher,
            self.clock,
            self.http,
            self.jobs,
            org_connection_id,
            margin=margin,
            rejected=rejected,
            signer=self.client_signer,
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        role: ProcessRole = ProcessRole.CLI,
    ) -> AsyncIterator[Runtime]:
        url = database_url(settings)
        if migrate:
            upgrade_database(url)
        cipher = build_cipher(settings)
        database = open_database(url, settings, role)
        try:
            # Before the job queue's pool opens: the check counts other processes' connections.
            await check_fleet_settings(database, cipher, settings, role)
            signer = await load_client_signer(database, cipher, settings.data_dir)
            jobs = build_job_app(url, settings, role)
            async with jobs.open_async(), outbound_client(settings) as http:
                yield cls(
                    settings=settings,
                    database=database,
                    jobs=jobs,
                    clock=clock or SystemClock(),
                    cipher=cipher,
                    http=http,
                    client_signer=signer,
                    blobs=build_blob_store(settings),
                )
        finally:
            await database.close()


def open_database(url: str, settings: Settings, role: ProcessRole) -> Database:
    """The main pool of a process in `role`, sized by its connection budget."""
    plan = plan_pools(role, settings.db, settings.jobs.concurrency)
    return Database(
        url,
        pool_size=plan.pool_size,
        max_overflow=plan.max_overflow,
        pool_timeout_seconds=settings.db.pool_timeout_seconds,
        connect_args=session_options(role, settings.db),
    )


def outbound_client(settings: Settings) -> httpx.AsyncClient:
    """The client for calls to health systems' authorization servers (not webhooks: see http/).

    Guarded: private, loopback and link-local addresses are refused unless a call says its health
    system may be reached privately (`consent.smart` passes `allow_private`); cloud metadata
    addresses always are. No proxy from the environment: the guard connects to the address it
    checked.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=False, refuse_metadata=True, remedy=SOURCE_REMEDY),
        timeout=httpx.Timeout(settings.consent.http_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
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
