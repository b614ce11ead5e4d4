"""Malformed URLs are refused with a 400 and the reason, never a 500 (issue #11, item 5).

Webhook endpoint URLs through the API and the CLI, and the other URLs the platform API reads:
the Origin and Referer headers of the browser-facing routes, and registered redirect URIs.
"""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from ehiconnect.cli.main import app as cli_app
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.settings import Settings

pytestmark = pytest.mark.integration

BAD_URLS = {
    "control character": ("https://hooks.example.com/a\x01b", "U+0001"),
    "tab": ("https://hooks.example.com/a\tb", "U+0009"),
    "DEL": ("https://hooks.example.com/a\x7fb", "U+007F"),
    "octal IPv4": ("http://0177.0.0.1/hook", "IPv4"),
    "hex IPv4": ("http://0x7f.0.0.1/hook", "IPv4"),
    "integer IPv4": ("http://2130706433/hook", "IPv4"),
    "over 64 KB": ("https://hooks.example.com/" + "a" * 65_536, "at most 2048"),
    "no host": ("https:///hook", "no host"),
    "other scheme": ("ftp://hooks.example.com/hook", "https://"),
    "userinfo": ("https://user:pw@hooks.example.com/hook", "user:password@"),
    "invalid IDN": ("https://☃.example/hook", "IDNA"),
    "port out of range": ("https://hooks.example.com:99999/hook", "port 99999"),
    "unclosed IPv6 bracket": ("http://[::1/hook", "cannot be parsed"),
}


@pytest.fixture
def platform(http: httpx.Client) -> httpx.Client:
    # A 500 makes uvicorn drop the connection: close after each request so one failure does not
    # hide the next case behind a connection reset.
    http.headers["connection"] = "close"
    return http


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_api_refuses_malformed_endpoint_urls_with_the_reason(
    platform: httpx.Client, org: CreatedOrg, case: str
) -> None:
    url, reason = BAD_URLS[case]
    keys = org.keys["test"]
    answer = platform.post(
        "/v1/webhooks/endpoints", json={"url": url}, auth=(keys.public_id, keys.private_key)
    )
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["success"] is False
    assert body["error"] == "invalid_request"
    assert reason in body["error_description"]
    assert (
        platform.get("/v1/webhooks/endpoints", auth=(keys.public_id, keys.private_key)).json()[
            "data"
        ]
        == []
    )


def test_api_stores_an_internationalized_host_in_ascii(
    platform: httpx.Client, org: CreatedOrg
) -> None:
    keys = org.keys["test"]
    auth = (keys.public_id, keys.private_key)
    created = platform.post(
        "/v1/webhooks/endpoints", json={"url": "https://bücher.example/hook"}, auth=auth
    )
    assert created.status_code == 201, created.text
    [endpoint] = platform.get("/v1/webhooks/endpoints", auth=auth).json()["data"]
    assert endpoint["url"] == "https://xn--bcher-kva.example/hook"


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    assert settings.database_url is not None
    monkeypatch.setenv("EHICONNECT_DATABASE_URL", settings.database_url.get_secret_value())
    # The same data directory (and so vault key) as the runtime that created `org`.
    monkeypatch.setenv("EHICONNECT_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("EHICONNECT_CONFIG", raising=False)
    return CliRunner()


@pytest.mark.parametrize("case", ["octal IPv4", "over 64 KB", "invalid IDN", "control character"])
def test_cli_refuses_malformed_endpoint_urls_with_the_reason(
    cli: CliRunner, org: CreatedOrg, case: str
) -> None:
    url, reason = BAD_URLS[case]
    result = cli.invoke(
        cli_app, ["webhooks", "add", "--org", org.org_id, "--mode", "test", "--url", url]
    )
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "invalid webhook URL" in result.output
    assert reason in " ".join(result.output.split())


@pytest.mark.parametrize("header", ["origin", "referer"])
def test_a_malformed_origin_or_referer_is_not_a_server_error(
    platform: httpx.Client, org: CreatedOrg, header: str
) -> None:
    public_id = org.keys["test"].public_id
    bad = {header: "http://[::1"}
    card = platform.get("/v1/bridge/org", params={"public_id": public_id}, headers=bad)
    connect = platform.get(
        "/v1/bridge/connect", params={"public_id": public_id}, headers=bad, follow_redirects=False
    )
    if header == "origin":
        assert card.status_code == 403, card.text
        assert card.json()["error"] == "origin_not_allowed"
    else:
        assert card.status_code == 200, card.text
    # Without a brand, endpoint or portal the sign-in cannot start: the patient's error page.
    assert connect.status_code == 400, connect.text


def test_cli_refuses_a_malformed_redirect_uri(cli: CliRunner) -> None:
    result = cli.invoke(
        cli_app, ["orgs", "create", "--name", "Acme", "--redirect-uri", "https://[::1/cb"]
    )
    assert result.exit_code == 1, result.output
    assert "not a valid URL" in result.output
