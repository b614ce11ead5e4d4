"""The reference deployment files under deploy/ (issue 12) are not run here (no container engine,
no systemd as init), so this checks what can be checked without one: they parse, their settings
are real settings, their commands are real commands, and stop timeouts cover the drains."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any, get_origin

import pytest
from pydantic import BaseModel

from ehiconnect.cli.main import app as cli_app
from ehiconnect.settings import Settings
from ehiconnect.tracker.settings import TrackerSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEMD = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_FILES = sorted((DEPLOY / "systemd").glob("*.env.example"))
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def _is_setting(variable: str) -> bool:
    """Whether `EHICONNECT_A__B` names a field of the settings (`a.b`), or of the tracker's
    own (`EHICONNECT_TRACKER__A`)."""
    assert variable.startswith("EHICONNECT_"), variable
    parts = variable.removeprefix("EHICONNECT_").lower().split("__")
    model: type[BaseModel] = Settings
    if parts[0] == "tracker" and len(parts) > 1:
        model, parts = TrackerSettings, parts[1:]
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation, rest = field.annotation, parts[index + 1 :]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not rest:
                return True  # a whole section, as JSON
            model = annotation
            continue
        if get_origin(annotation) is dict:
            return len(rest) <= 1  # vault.keys.<kid>
        return not rest
    return True


def test_the_setting_check_tells_a_typo() -> None:
    assert _is_setting("EHICONNECT_EXPORTS__S3_PUBLIC_ENDPOINT_URL")
    assert _is_setting("EHICONNECT_VAULT__KEYS__k2026a")
    assert not _is_setting("EHICONNECT_EXPORTS__S3_PUBLIC_URL")
    assert not _is_setting("EHICONNECT_JOBS__CONCURRENCY__X")
    assert _is_setting("EHICONNECT_TRACKER__PLATFORM_BASE_URL")
    assert not _is_setting("EHICONNECT_TRACKER__PLATFORM_URL")


def _commands() -> set[tuple[str, ...]]:
    """`ehiconnect` commands as word tuples: ("serve",), ("tracker", "serve"), …"""
    found = {(c.name or c.callback.__name__,) for c in cli_app.registered_commands if c.callback}
    for group in cli_app.registered_groups:
        sub = group.typer_instance
        assert sub is not None
        name = group.name or ""
        found |= {(name, c.name or "") for c in sub.registered_commands}
    return found


def _is_command(words: list[str]) -> bool:
    assert words[0].endswith("ehiconnect"), words
    return tuple(words[1:2]) in _commands() or tuple(words[1:3]) in _commands()


# --- systemd ----------------------------------------------------------------------------------


def _unit(path: Path) -> configparser.ConfigParser:
    # strict=False: a unit may repeat a key (two EnvironmentFile= lines).
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_there_are_units_for_the_api_the_worker_and_the_tracker() -> None:
    names = {path.name for path in SYSTEMD}
    assert names == {
        "ehiconnect-api.service",
        "ehiconnect-worker@.service",
        "ehiconnect-tracker.service",
    }


@pytest.mark.parametrize("path", SYSTEMD, ids=lambda p: p.name)
def test_a_unit_parses_and_runs_a_real_command(path: Path) -> None:
    unit = _unit(path)
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    command = shlex.split(unit["Service"]["ExecStart"])
    assert _is_command(command), command
    for assignment in unit["Service"].get("Environment", "").split():
        assert _is_setting(assignment.split("=", 1)[0]), assignment


def test_systemd_waits_longer_than_the_drains() -> None:
    defaults = Settings()
    timeouts = {path.name: float(_unit(path)["Service"]["TimeoutStopSec"]) for path in SYSTEMD}
    assert timeouts["ehiconnect-worker@.service"] > defaults.jobs.shutdown_grace_seconds
    assert timeouts["ehiconnect-api.service"] > defaults.api.shutdown_grace_seconds


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_environment_files_name_real_settings(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert lines
    for line in lines:
        assert _is_setting(line.split("=", 1)[0]), line


# --- Kubernetes -------------------------------------------------------------------------------


def _documents() -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml")
    documents: list[dict[str, Any]] = []
    for path in MANIFESTS:
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = document["spec"]["template"]["spec"]["containers"]
    return containers


def test_manifests_parse_with_the_workloads_and_services_expected() -> None:
    documents = _documents()
    for document in documents:
        assert document["apiVersion"], document
        assert document["metadata"]["name"], document
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert {
        ("Deployment", "ehiconnect-api"),
        ("Service", "ehiconnect-api"),
        ("Deployment", "ehiconnect-worker"),
        ("Deployment", "ehiconnect-tracker"),
        ("ConfigMap", "ehiconnect"),
        ("Secret", "ehiconnect"),
    } <= kinds


def test_selectors_match_their_pods_and_commands_are_real() -> None:
    documents = _documents()
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments]
    for deployment, labels in zip(deployments, pod_labels, strict=True):
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for container in _containers(deployment):
            assert _is_command(container["command"]), container["command"]
            for variable in container.get("env", []):
                if variable["name"].startswith("EHICONNECT_"):
                    assert _is_setting(variable["name"]), variable
    for service in (d for d in documents if d["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        assert any(selector <= labels.items() for labels in pod_labels), service


def test_config_and_secret_name_real_settings() -> None:
    for document in _documents():
        if document["kind"] in ("ConfigMap", "Secret"):
            values = document.get("data") or document.get("stringData") or {}
            for name in values:
                assert _is_setting(name), name


def test_kubernetes_waits_longer_than_the_drains() -> None:
    defaults = Settings()
    grace = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for d in _documents()
        if d["kind"] == "Deployment"
    }
    assert grace["ehiconnect-worker"] > defaults.jobs.shutdown_grace_seconds
    assert grace["ehiconnect-api"] > defaults.api.shutdown_grace_seconds


def test_the_api_probes_are_the_documented_endpoints() -> None:
    [api] = [
        d
        for d in _documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "ehiconnect-api"
    ]
    [container] = _containers(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
