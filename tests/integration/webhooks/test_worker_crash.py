"""A delivery worker SIGKILLed mid-batch loses nothing: a second worker delivers the rest."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import serve_in_thread
from ehiconnect.webhooks import events, outbox
from ehiconnect.webhooks.models import WebhookDelivery
from tests.integration.conftest import make_org
from tests.integration.webhooks.helpers import add_endpoint
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

EVENTS = 300

# Until Settings has a `webhooks` section, the worker runs with one added the same way.


def worker_command() -> list[str]:
    return [sys.executable, "-m", "ehiconnect", "worker"]


def worker_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None
    env = {
        **os.environ,
        "EHICONNECT_DATABASE_URL": settings.database_url.get_secret_value(),
        # The same data directory, hence the same vault key file, as the test's runtime.
        "EHICONNECT_DATA_DIR": str(settings.data_dir),
        "EHICONNECT_LOG_LEVEL": "WARNING",
        "EHICONNECT_JOBS__HEARTBEAT_SECONDS": "1",
        "EHICONNECT_JOBS__STALLED_AFTER_SECONDS": "5",
        "EHICONNECT_WEBHOOKS__TIMEOUT_SECONDS": "2",
        "EHICONNECT_WEBHOOKS__CLAIM_LEASE_SECONDS": "4",
        # Small batches keep deliveries flowing, so the kill lands mid-run, not between runs.
        "EHICONNECT_WEBHOOKS__BATCH_SIZE": "10",
    }
    env.pop("EHICONNECT_CONFIG", None)
    return env


@pytest.fixture
def start_worker(
    settings: Settings, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(worker_command(), env=worker_env(settings), cwd=tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_killed_worker_loses_no_event(
    settings: Settings, start_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    receiver = Receiver()
    receiver.delay_seconds = 0.3  # slow enough that the kill lands while requests are in flight
    async with Runtime.open(settings) as runtime:
        org = await make_org(runtime)
        with serve_in_thread(receiver) as server:
            await add_endpoint(runtime, org.org_id, server.url + "/hooks")
            emitted = set()
            async with runtime.database.transaction() as session:
                for n in range(EVENTS):
                    emitted.add(
                        await outbox.emit(
                            session,
                            jobs=runtime.jobs,
                            clock=runtime.clock,
                            org_id=org.org_id,
                            api_mode="test",
                            type=events.WEBHOOK_TEST,
                            data={"n": n},
                        )
                    )

            first = start_worker()
            await wait_for(lambda: len(receiver.received) >= 30, 60, "the first deliveries")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            async with runtime.database.transaction() as session:
                in_flight = await session.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(WebhookDelivery.claim_token.is_not(None))
                )
            assert in_flight, "the worker should have died with claimed deliveries"
            assert len(set(receiver.ids())) < EVENTS

            second = start_worker()
            await wait_until_all_succeeded(runtime, 90)
            second.send_signal(signal.SIGTERM)
            second.wait(20)

        assert set(receiver.ids()) == emitted


async def succeeded_count(runtime: Runtime) -> int:
    async with runtime.database.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == "succeeded")
        )
    return int(count or 0)


async def wait_until_all_succeeded(runtime: Runtime, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (done := await succeeded_count(runtime)) < EVENTS:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {done}/{EVENTS} deliveries succeeded after {timeout}s")
        await asyncio.sleep(0.2)
