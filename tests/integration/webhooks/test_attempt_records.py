"""Every webhook attempt is recorded, whatever the receiver answers and however busy the database.

A pass whose record could not be written left its deliveries leased: they were sent again at
lease end, and the first attempt never appeared in the attempt log.
"""

from __future__ import annotations

import psycopg
import pytest

from ehiconnect.clock import FrozenClock
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import WebhookSettings
from ehiconnect.testing.servers import ThreadedServer
from tests.integration.webhooks.helpers import (
    add_endpoint,
    attempts_of,
    deliverer,
    delivery_row,
    emit,
)
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration


async def test_a_response_body_with_nul_bytes_is_recorded_and_retried_on_schedule(
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    receiver.script.append(500)
    receiver.reply_body = b"upstream\x00broke\x00"
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/hooks")
    event_id = await emit(runtime, org.org_id)

    async with deliverer(runtime, webhook_settings) as sender:
        report = await sender.run_pass()

    assert report.failed == 1
    [attempt] = await attempts_of(runtime, event_id)
    assert attempt.status_code == 500
    assert attempt.response_excerpt == "upstream\ufffdbroke\ufffd"
    delivery = await delivery_row(runtime, event_id)
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at > clock.now()  # the retry schedule, not the lease


async def test_attempts_are_recorded_when_the_database_refuses_the_first_tries(
    runtime: Runtime,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
    database_url: str,
) -> None:
    """The record is written once the database accepts it again, within the claim lease."""
    await add_endpoint(runtime, org.org_id, receiver_server.url + "/hooks")
    event_id = await emit(runtime, org.org_id)
    # A real refusal from PostgreSQL: the first two inserts into the attempt log fail.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """
            CREATE SEQUENCE refusals;
            CREATE FUNCTION refuse_twice() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF nextval('refusals') <= 2 THEN
                RAISE EXCEPTION 'too many clients already' USING ERRCODE = '53300';
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_twice BEFORE INSERT ON webhook_attempts
              FOR EACH STATEMENT EXECUTE FUNCTION refuse_twice();
            """
        )

    async with deliverer(runtime, webhook_settings) as sender:
        report = await sender.run_pass()

    assert report.succeeded == 1
    assert receiver.ids() == [event_id]
    [attempt] = await attempts_of(runtime, event_id)
    assert attempt.status_code == 200
    assert (await delivery_row(runtime, event_id)).status == "succeeded"
