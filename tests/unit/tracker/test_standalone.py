"""The tracker stands apart from the platform: its own settings (under the names it always had),
its own tasks and tables, none of them known to the platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehiconnect.schema import Base as PlatformBase
from ehiconnect.settings import Settings
from ehiconnect.task_registry import build_job_app
from ehiconnect.tracker import QUEUE, TrackerBase, TrackerSettings
from ehiconnect.tracker.process import build_tracker_job_app

URL = "postgresql://user@127.0.0.1:1/never-connected"


def test_tracker_settings_come_from_its_environment_then_its_table_of_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[api]\nport = 9000\n[tracker]\nport = 8700\npublic_id = "from-file"\n'
        "[tracker.retry]\nmax_export_requests = 5\n"
    )
    monkeypatch.setenv("EHICONNECT_CONFIG", str(config))
    monkeypatch.setenv("EHICONNECT_TRACKER__PUBLIC_ID", "public_test_env")
    monkeypatch.setenv("EHICONNECT_TRACKER__FHIR_SERVER__BASE_URL", "http://fhir.test/r4")
    monkeypatch.setenv("EHICONNECT_TRACKER__WEBHOOK_SECRETS", '["whsec_one", "whsec_two"]')
    tracker = TrackerSettings.load()
    assert tracker.public_id == "public_test_env"  # the environment wins
    assert tracker.port == 8700  # from [tracker]
    assert tracker.retry.max_export_requests == 5  # a nested table
    assert tracker.retry.backoff_seconds == [5.0, 30.0, 120.0, 600.0, 1800.0]  # default
    assert tracker.fhir_server.base_url == "http://fhir.test/r4"
    assert [s.get_secret_value() for s in tracker.webhook_secrets] == ["whsec_one", "whsec_two"]
    assert Settings.load().api.port == 9000  # the platform reads the same file, not [tracker]


def test_the_config_file_is_found_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").write_text("[tracker]\nport = 8601\n")
    monkeypatch.delenv("EHICONNECT_CONFIG", raising=False)
    monkeypatch.setenv("EHICONNECT_DATA_DIR", str(tmp_path))
    assert TrackerSettings.load().port == 8601


def test_a_named_config_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHICONNECT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError, match="EHICONNECT_CONFIG"):
        TrackerSettings.load()


def test_the_platform_knows_neither_the_trackers_settings_tasks_nor_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EHICONNECT_CONFIG", raising=False)
    assert "tracker" not in Settings.model_fields
    platform_tasks = build_job_app(URL, Settings()).tasks
    assert not [name for name in platform_tasks if name.startswith("tracker:")]
    assert not [name for name in PlatformBase.metadata.tables if name.startswith("tracker_")]


def test_the_tracker_has_its_own_tasks_on_its_own_queue_and_its_own_tables() -> None:
    tasks = build_tracker_job_app(URL).tasks
    ours = {name: task for name, task in tasks.items() if name.startswith("tracker:")}
    assert set(ours) >= {"tracker:confirm", "tracker:export", "tracker:download"}
    assert {task.queue for task in ours.values()} == {QUEUE}
    assert {task.queue for name, task in tasks.items() if name not in ours} == {"builtin"}
    assert set(TrackerBase.metadata.tables) == {
        "tracker_consents",
        "tracker_widget_events",
        "tracker_webhooks",
        "tracker_jobs",
        "tracker_job_events",
        "tracker_ingest_progress",
        "tracker_fhir_resources",
        "tracker_fhir_versions",
    }
