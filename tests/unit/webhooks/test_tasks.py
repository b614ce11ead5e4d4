import datetime as dt
import itertools

import pytest
from croniter import croniter  # type: ignore[import-untyped]

from ehiconnect.jobs.app import build_job_app
from ehiconnect.settings import Settings
from ehiconnect.webhooks import make_blueprint
from ehiconnect.webhooks.settings import WebhookSettings
from ehiconnect.webhooks.tasks import SWEEP_CRON, webhook_settings


def test_sweep_is_scheduled_every_five_seconds() -> None:
    crons = {p.cron for p in make_blueprint().periodic_registry.periodic_tasks.values()}
    assert SWEEP_CRON in crons
    ticks = croniter(SWEEP_CRON, dt.datetime(2026, 11, 29, 2, 1, 2, tzinfo=dt.UTC))
    firings = [ticks.get_next(dt.datetime) for _ in range(4)]
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(firings)}
    assert gaps == {5.0}


def test_job_app_has_the_webhook_tasks_under_their_namespace() -> None:
    names = set(build_job_app("postgresql://unused@localhost/unused", Settings()).tasks)
    assert {"webhooks:deliver_event", "webhooks:sweep", "webhooks:purge"} <= names


def test_settings_default_and_refuse_a_lease_shorter_than_a_request() -> None:
    assert webhook_settings(Settings()).timeout_seconds == 15
    with pytest.raises(ValueError, match="claim_lease_seconds"):
        WebhookSettings(timeout_seconds=30, claim_lease_seconds=20)
