"""Real `ehiconnect worker` processes: one SIGKILLed mid-batch loses nothing (a second worker
delivers the rest), and a worker's dispatcher sends new events and retries without a sweep."""

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
from sqlalchemy import func, select, text

from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import serve_in_thread
from ehiconnect.webhooks import outbox
from ehiconnect.webhooks.models import WebhookDelivery
from ehiconnect.webhooks.payloads import WebhookTest
from ehiconnect.webhooks.wakeup import APPLICATION_NAME
from tests.integration.conftest import make_org
from tests.integration.webhooks.helpers import add_endpoint
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

EVENTS = 300


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
        # No safety-net sweep: the dead worker's claims must be picked up when their lease ends.
        "EHICONNECT_WEBHOOKS__SWEEP_INTERVAL_SECONDS": "3600",
    }
    env.pop("EHICONNECT_CONFIG", None)
    return env


@pytest.fixture
def start_worker(
    settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            worker_command(), env={**worker_env(settings), **env}, cwd=tmp_path
        )
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
    settings: Settings, start_worker: Callable[..., subprocess.Popen[bytes]]
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
                            clock=runtime.clock,
                            org_id=org.org_id,
                            api_mode="test",
                            event=WebhookTest.model_validate({"n": n}),
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


async def test_worker_sends_a_new_event_and_its_retry_without_a_sweep_then_stops_cleanly(
    settings: Settings, start_worker: Callable[..., subprocess.Popen[bytes]]
) -> None:
    receiver = Receiver(script=[503])
    async with Runtime.open(settings) as runtime:
        org = await make_org(runtime)
        with serve_in_thread(receiver) as server:
            await add_endpoint(runtime, org.org_id, server.url + "/hooks")
            worker = start_worker(
                EHICONNECT_WEBHOOKS__RETRY_SCHEDULE_SECONDS="[0, 1]",
                EHICONNECT_WEBHOOKS__JITTER_FRACTION="0",
            )
            await wait_for_listener(runtime, 60)
            async with runtime.database.transaction() as session:
                # No queue job: only the dispatcher's LISTEN can hear of this event.
                event_id = await outbox.emit(
                    session,
                    clock=runtime.clock,
                    org_id=org.org_id,
                    api_mode="test",
                    event=WebhookTest.model_validate({"n": 1}),
                )
            await wait_for(lambda: len(receiver.received) >= 2, 30, "the event and its retry")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0

        assert receiver.ids() == [event_id, event_id]
        async with runtime.database.transaction() as session:
            delivery = await session.scalar(select(WebhookDelivery))
        assert delivery is not None
        assert (delivery.status, delivery.attempts) == ("succeeded", 2)


async def wait_for_listener(runtime: Runtime, timeout: float) -> None:
    """Until a worker's dispatcher LISTENs on this test's database."""
    deadline = time.monotonic() + timeout
    while True:
        async with runtime.database.transaction() as session:
            listening = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            )
        if listening:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker listened within {timeout}s")
        await asyncio.sleep(0.1)
