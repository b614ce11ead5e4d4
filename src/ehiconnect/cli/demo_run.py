"""One run of `ehiconnect demo`, step by step, with its progress on the terminal.

1. Opens the runtime (the embedded PostgreSQL in the data directory, migrations).
2. Finds or makes the demo organization: test keys, a webhook endpoint at the tracker's /webhooks.
3. Serves the sandbox health systems, the platform API and the tracker; runs the platform's worker
   and the tracker's worker (queue "tracker"), all in this process (demo_services).
4. Connects a sandbox patient through the real consent flow, headlessly (demo_flow).
5. Watches the tracker collect the record: export, signed webhook, download, ingest.
6. Prints a summary (demo_report), then stops everything (with keep_running: at Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import threading
import time
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ehiconnect.cli.common import print_json
from ehiconnect.cli.demo_flow import collect, connect_patient, follow
from ehiconnect.cli.demo_logic import MILESTONES
from ehiconnect.cli.demo_ports import listeners
from ehiconnect.cli.demo_report import print_summary, summary_of
from ehiconnect.cli.demo_services import DemoServices, database, run_services
from ehiconnect.cli.demo_setup import DemoOrg, ensure_demo_org
from ehiconnect.consolekit import accounts
from ehiconnect.consolekit.models import ROLE_OPERATOR
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox import HealthSystem, Persona
from ehiconnect.settings import Settings
from ehiconnect.tracker.ledger import JobState
from ehiconnect.tracker.models import TrackerJob
from ehiconnect.tracker.settings import TrackerSettings


class DemoRun:
    def __init__(
        self,
        settings: Settings,
        system: HealthSystem,
        persona: Persona,
        *,
        tracker_settings: TrackerSettings,
        out: Console,
        keep_running: bool,
        give_up_after: float,
        as_json: bool,
    ) -> None:
        self.settings = settings
        self.tracker_settings = tracker_settings
        self.system = system
        self.persona = persona
        self.out = out
        self.keep_running = keep_running
        self.give_up_after = give_up_after
        self.as_json = as_json
        self.summary: dict[str, Any] | None = None  # set once the record is collected

    async def run(self) -> None:
        _stop_on_sigterm()
        started = time.monotonic()
        settings, persona = self.settings, self.persona
        tracker_url = listeners(settings, self.tracker_settings)[2].url
        with database(settings) as url:
            where = "an embedded PostgreSQL" if settings.database_url is None else "PostgreSQL"
            self._done(f"{where} is ready; data in {settings.data_dir.resolve()}")
            async with Runtime.open(settings) as runtime:
                org = await ensure_demo_org(runtime, f"{tracker_url}/webhooks")
                verb = "reused" if org.reused else "created"
                self._done(f"demo organization {verb}: {org.credentials.org_id}")
                tracker_settings = demo_tracker_settings(settings, self.tracker_settings, org)
                async with run_services(runtime, url, tracker_settings) as services:
                    urls = services.urls
                    self._done(
                        f"platform API {urls['api']}, sandbox {urls['sandbox']}, tracker "
                        f"{urls['tracker']}, and both job workers are running"
                    )
                    set_up = time.monotonic()
                    if persona.size_class == "huge":
                        self.out.print(f"{persona.username}'s record is huge: this takes minutes")
                    connected = await connect_patient(
                        services, org.credentials.public_id, self.system, persona
                    )
                    consented = time.monotonic()
                    self._done(
                        f"{persona.username} signed in at {self.system.name} and allowed access: "
                        f"org_connection_id {connected.org_connection_id}"
                    )
                    job = await self._follow(services, connected.org_connection_id)
                    collected = await collect(services, connected, job)
                    seconds = time.monotonic() - started
                    self.summary = summary_of(
                        settings,
                        org,
                        self.system,
                        persona,
                        collected,
                        seconds,
                        setup_seconds=set_up - started,
                        consent_seconds=consented - set_up,
                    )
                    if self.keep_running:
                        self.summary["console"] = await demo_console_login(runtime, urls["api"])
                    if self.as_json:
                        print_json(self.summary)
                    else:
                        print_summary(self.out, self.summary, self.keep_running)
                    if self.keep_running:
                        await asyncio.Event().wait()  # until Ctrl-C

    async def _follow(self, services: DemoServices, connection_id: str) -> TrackerJob:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.out,
            transient=True,
        ) as progress:
            bar = progress.add_task("starting", total=None)

            def milestone(state: JobState, job: TrackerJob) -> None:
                _done(progress.console, MILESTONES[state].format(task_id=job.task_id))

            def activity(text: str) -> None:
                progress.update(bar, description=text)

            job: TrackerJob = await follow(
                services, connection_id, self.give_up_after, milestone, activity
            )
            return job

    def _done(self, text: str) -> None:
        _done(self.out, text)


DEMO_OPERATOR = "demo-operator@ehiconnect.invalid"


async def demo_console_login(runtime: Runtime, api_url: str) -> dict[str, str]:
    """A console operator account for this run, with a fresh random password (shown once, in the
    summary): the previous run's account, if any, is replaced and its sessions end with it."""
    password = secrets.token_urlsafe(18)
    async with runtime.database.transaction() as session:
        old = await accounts.find_user(session, "platform", DEMO_OPERATOR)
        if old is not None:
            await session.delete(old)
            await session.flush()
        await accounts.add_user(
            session,
            runtime.clock,
            realm="platform",
            email=DEMO_OPERATOR,
            password=password,
            role=ROLE_OPERATOR,
            org_id=None,
            actor="demo",
        )
    return {"url": f"{api_url}/console/", "email": DEMO_OPERATOR, "password": password}


def demo_tracker_settings(
    settings: Settings, tracker: TrackerSettings, org: DemoOrg
) -> TrackerSettings:
    """The tracker's settings, as the demo organization's backend: its keys, webhook secret and FHIR
    API token, the demo's platform, an export on each consent, Parquet besides the FHIR store."""
    return tracker.model_copy(
        update={
            "platform_base_url": f"{settings.public_base_url}/v1",
            "public_id": org.credentials.public_id,
            "private_key": SecretStr(org.credentials.private_key),
            "webhook_secrets": [SecretStr(org.webhook_secret)],
            "fhir_api_token": SecretStr(org.credentials.fhir_api_token),
            "auto_export": True,
            "fhir_store_enabled": True,
            "parquet_enabled": True,
        }
    )


def _done(out: Console, text: str) -> None:
    out.print(f"[green]✓[/green] {text}", soft_wrap=True, highlight=False)


def _stop_on_sigterm() -> None:
    """SIGTERM stops the demo the way Ctrl-C does: every service is shut down first."""
    if threading.current_thread() is not threading.main_thread():
        return
    task = asyncio.current_task()
    if task is None:
        return
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
