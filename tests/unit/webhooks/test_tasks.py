import pytest

from ehiconnect.settings import Settings, WebhookSettings
from ehiconnect.task_registry import build_job_app
from ehiconnect.webhooks import make_blueprint
from ehiconnect.webhooks.tasks import PURGE_CRON


def test_only_retention_runs_on_a_cron_the_dispatcher_replaced_the_sweep() -> None:
    periodic = make_blueprint().periodic_registry.periodic_tasks.values()
    assert [(p.task.name, p.cron) for p in periodic] == [("purge", PURGE_CRON)]


def test_job_app_has_only_the_retention_task_deliveries_are_no_jobs() -> None:
    names = set(build_job_app("postgresql://unused@localhost/unused", Settings()).tasks)
    assert {name for name in names if name.startswith("webhooks:")} == {"webhooks:purge"}


def test_settings_default_and_refuse_a_lease_shorter_than_a_request() -> None:
    assert Settings().webhooks.timeout_seconds == 15
    with pytest.raises(ValueError, match="claim_lease_seconds"):
        WebhookSettings(timeout_seconds=30, claim_lease_seconds=20)


def test_settings_refuse_a_negative_reconnect_wait() -> None:
    with pytest.raises(ValueError, match="reconnect_backoff_seconds"):
        WebhookSettings(reconnect_backoff_seconds=(1.0, -1.0))
