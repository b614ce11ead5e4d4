from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ehiconnect.settings import Settings


def test_environment_overrides_file_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('log_level = "DEBUG"\n[api]\nport = 9000\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("EHICONNECT_CONFIG", str(config))
    monkeypatch.setenv("EHICONNECT_API__PORT", "9100")
    settings = Settings.load()
    assert settings.api.port == 9100  # environment wins
    assert settings.api.host == "0.0.0.0"  # from the file
    assert settings.log_level == "DEBUG"
    assert settings.jobs.stalled_after_seconds == 10.0  # default
    assert settings.public_base_url == "http://0.0.0.0:9100"


def test_a_named_config_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EHICONNECT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError, match="EHICONNECT_CONFIG"):
        Settings.load()


def test_database_url_is_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EHICONNECT_CONFIG", raising=False)
    monkeypatch.setenv("EHICONNECT_DATABASE_URL", "postgresql://u:hunter2@db/x")
    settings = Settings.load()
    assert "hunter2" not in repr(settings)
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value().endswith("@db/x")


@pytest.mark.parametrize("value", ["1048575", "1073741825"])
def test_the_json_response_limit_stays_where_it_protects_a_worker(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Below 1 MiB an ordinary search page would fail; above 1 GiB one response, parsed, could
    exhaust a worker's memory: either is refused when the settings load, naming the setting."""
    monkeypatch.delenv("EHICONNECT_CONFIG", raising=False)
    monkeypatch.setenv("EHICONNECT_EXPORTS__MAX_JSON_RESPONSE_BYTES", value)
    with pytest.raises(ValidationError, match="max_json_response_bytes"):
        Settings.load()
    monkeypatch.setenv("EHICONNECT_EXPORTS__MAX_JSON_RESPONSE_BYTES", str(1 << 30))
    assert Settings.load().exports.max_json_response_bytes == 1 << 30
