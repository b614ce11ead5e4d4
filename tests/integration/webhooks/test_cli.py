"""`ehiconnect webhooks ...` against a real database and a loopback receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import standardwebhooks
from typer.testing import CliRunner

from ehiconnect.cli.main import app
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    assert settings.database_url is not None
    monkeypatch.setenv("EHICONNECT_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("EHICONNECT_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.delenv("EHICONNECT_CONFIG", raising=False)
    return CliRunner()


def run(cli: CliRunner, *args: str, ok: bool = True) -> Any:
    result = cli.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout) if "--json" in args else result.output
    assert result.exit_code != 0
    return result.output


def test_manage_an_endpoint_and_send_a_test_event(
    cli: CliRunner, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    org = run(cli, "orgs", "create", "--name", "Acme", "--json")["org_id"]
    url = receiver_server.url + "/hooks"
    added = run(cli, "webhooks", "add", "--org", org, "--mode", "test", "--url", url, "--json")
    assert added["secret"].startswith("whsec_")
    endpoint = added["endpoint_id"]

    duplicate = run(cli, "webhooks", "add", "--org", org, "--mode", "live", "--url", url, ok=False)
    assert "unique per organization" in " ".join(duplicate.split())
    bad = run(cli, "webhooks", "add", "--org", org, "--mode", "test", "--url", url + "2",
              "--events", "patient.nope", ok=False)  # fmt: skip
    assert "patient.nope" in bad

    sent = run(cli, "webhooks", "test", "--endpoint", endpoint, "--json")
    assert sent["attempt"]["status_code"] == 200
    (got,) = receiver.received
    envelope = standardwebhooks.Webhook(added["secret"]).verify(got.body, got.headers)
    assert envelope["type"] == "webhook.test"
    assert envelope["id"] == sent["event_id"]

    rotated = run(cli, "webhooks", "rotate-secret", "--endpoint", endpoint, "--json")
    run(cli, "webhooks", "test", "--endpoint", endpoint, "--json")
    latest = receiver.received[-1]
    for secret in (added["secret"], rotated["secret"]):
        standardwebhooks.Webhook(secret).verify(latest.body, latest.headers)

    disabled = run(cli, "webhooks", "disable", "--endpoint", endpoint, "--json")
    assert disabled["status"] == "disabled"
    assert "enable it first" in " ".join(
        run(cli, "webhooks", "test", "--endpoint", endpoint, ok=False).split()
    )
    listed = run(cli, "webhooks", "list", "--org", org, "--json")
    assert [(e["endpoint_id"], e["status"]) for e in listed] == [(endpoint, "disabled")]
    run(cli, "webhooks", "enable", "--endpoint", endpoint, "--json")
    log = run(cli, "webhooks", "attempts", "--endpoint", endpoint, "--json")
    assert [a["status_code"] for a in log] == [200, 200]
    # The operator reaches any organization's event and endpoint by id alone.
    resent = run(cli, "webhooks", "resend", "--event", sent["event_id"], "--json")
    assert resent == {"event_id": sent["event_id"], "deliveries": 1}
    unknown = "00000000-0000-4000-8000-000000000000"
    assert "no webhook event has id" in run(cli, "webhooks", "resend", "--event", unknown, ok=False)
    run(cli, "webhooks", "remove", "--endpoint", endpoint, "--json")
    assert run(cli, "webhooks", "list", "--org", org, "--json") == []
    gone = run(cli, "webhooks", "remove", "--endpoint", endpoint, ok=False)
    assert "`ehiconnect webhooks list` shows them" in " ".join(gone.split())


def test_test_command_fails_when_the_receiver_does(
    cli: CliRunner, receiver: Receiver, receiver_server: ThreadedServer
) -> None:
    receiver.default_status = 500
    org = run(cli, "orgs", "create", "--name", "Acme", "--json")["org_id"]
    url = receiver_server.url + "/broken"
    endpoint = run(cli, "webhooks", "add", "--org", org, "--mode", "test", "--url", url, "--json")
    output = run(cli, "webhooks", "test", "--endpoint", endpoint["endpoint_id"], ok=False)
    assert "500" in output
