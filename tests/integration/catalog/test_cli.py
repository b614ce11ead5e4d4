"""`ehiconnect catalog …` as an operator runs it: a child process against a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.catalog.reading import CatalogInputError, read_catalog_source
from ehiconnect.connections.tokens import endpoint_auth
from ehiconnect.runtime import Runtime
from ehiconnect.sandbox.systems import CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.catalog.conftest import BUNDLE, PLAIN, database_dump, run_cli
from tests.integration.consent.conftest import Platform, endpoint_ids, query_of

ZERO = {"brands": 0, "portals": 0, "endpoints": 0}


@pytest.fixture
def catalog_host() -> Iterator[ThreadedServer]:
    """A web server publishing the bundle, like a vendor's brands endpoint."""

    async def brands(request: Request) -> Response:
        return Response(BUNDLE.read_bytes(), media_type="application/fhir+json")

    async def missing(request: Request) -> Response:
        return PlainTextResponse("no such file", status_code=404)

    app = Starlette(routes=[Route("/brands.json", brands), Route("/gone.json", missing)])
    with serve_in_thread(app) as server:
        yield server


def test_catalog_import_from_a_file_is_idempotent(
    cli_env: dict[str, str], database_url: str
) -> None:
    first = run_cli(cli_env, "catalog", "import", str(BUNDLE), "--platform-type", "epic", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["source"] == "brands-bundle"  # the file name stem
    assert report["format"] == "brands-bundle"
    assert report["added"] == {"brands": 6, "portals": 6, "endpoints": 6}

    again = run_cli(cli_env, "catalog", "import", str(BUNDLE), "--platform-type", "epic", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] == ZERO
    assert json.loads(again.stdout)["changed"] == ZERO

    table = run_cli(cli_env, "catalog", "import", str(PLAIN), "--source", "partners")
    assert table.returncode == 0, table.stderr
    assert "partners" in table.stdout
    assert "brands" in table.stdout
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT source, platform_type, count(*) FROM catalog_endpoints "
            "WHERE NOT sandbox GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    assert rows == [
        ("brands-bundle", "epic", 6),
        ("partners", "cerner", 2),
        ("partners", "epic", 1),
        ("partners", "smart", 1),
    ]

    found = run_cli(cli_env, "catalog", "search", "Mercy Helth", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["id"] == "mercy-health"


def test_catalog_import_refuses_what_it_cannot_use(
    cli_env: dict[str, str], catalog_host: ThreadedServer
) -> None:
    reserved = run_cli(cli_env, "catalog", "import", str(BUNDLE), "--source", "sandbox")
    assert reserved.returncode == 1
    assert "reserved for the sandbox" in reserved.stderr

    not_found = run_cli(cli_env, "catalog", "import", f"{catalog_host.url}/gone.json")
    assert not_found.returncode == 1
    assert "answered 404" in not_found.stderr

    with pytest.raises(CatalogInputError, match="is not a file"):
        read_catalog_source("/nonexistent/brands.json", max_bytes=2**20)
    with pytest.raises(CatalogInputError, match="larger than"):
        read_catalog_source(f"{catalog_host.url}/brands.json", max_bytes=1000)
    with pytest.raises(CatalogInputError, match="over the 0 MiB limit"):
        read_catalog_source(str(BUNDLE), max_bytes=1000)
    with pytest.raises(CatalogInputError, match="only files and http"):
        read_catalog_source("ftp://vendor.example/brands.json", max_bytes=2**20)


def test_catalog_import_from_a_url(cli_env: dict[str, str], catalog_host: ThreadedServer) -> None:
    result = run_cli(cli_env, "catalog", "import", f"{catalog_host.url}/brands.json", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == "127.0.0.1"  # the URL's host
    assert report["added"]["brands"] == 6


async def test_configure_seals_the_secret_from_stdin_and_a_patient_connects_with_it(
    platform: Platform, runtime: Runtime, cli_env: dict[str, str], database_url: str
) -> None:
    harbor = endpoint_ids(platform.sandbox.url)["harbor"]
    secret_flag = run_cli(
        cli_env, "catalog", "configure", harbor, "--auth-method", "client_secret_basic"
    )
    assert secret_flag.returncode == 1
    assert "needs a client secret" in secret_flag.stderr

    result = run_cli(
        cli_env,
        "catalog", "configure", harbor,
        "--client-id", CONFIDENTIAL_CLIENT_ID,
        "--auth-method", "client_secret_basic",
        "--client-secret-stdin",
        "--scopes", "launch/patient openid fhirUser offline_access patient/*.rs",
        "--json",
        stdin=CONFIDENTIAL_CLIENT_SECRET + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["client_id"] == CONFIDENTIAL_CLIENT_ID
    assert view["client_auth_method"] == "client_secret_basic"
    assert view["client_secret_set"] is True
    assert CONFIDENTIAL_CLIENT_SECRET not in result.stdout + result.stderr

    dump = database_dump(database_url)
    assert CONFIDENTIAL_CLIENT_SECRET not in dump
    assert CONFIDENTIAL_CLIENT_SECRET.encode().hex() not in dump
    async with runtime.database.transaction() as session:
        endpoint = await session.get(CatalogEndpoint, harbor)
        assert endpoint is not None
        assert endpoint_auth(runtime.cipher, endpoint).secret == CONFIDENTIAL_CLIENT_SECRET

    # The platform now signs in as the confidential client; the sandbox checks the secret.
    assert query_of(platform.authorize("harbor"))["client_id"] == CONFIDENTIAL_CLIENT_ID
    connected = platform.connect("harbor", "amy")
    assert connected["status"] == "success", connected

    shown = run_cli(cli_env, "catalog", "show", harbor)
    assert shown.returncode == 0, shown.stderr
    assert "client_secret_basic" in shown.stdout
    assert CONFIDENTIAL_CLIENT_SECRET not in shown.stdout


async def test_configure_with_a_wrong_secret_fails_at_the_token_endpoint(
    platform: Platform, cli_env: dict[str, str]
) -> None:
    harbor = endpoint_ids(platform.sandbox.url)["harbor"]
    result = run_cli(
        cli_env,
        "catalog", "configure", harbor,
        "--client-id", CONFIDENTIAL_CLIENT_ID,
        "--auth-method", "client_secret_basic",
        "--client-secret-stdin",
        stdin="not-the-secret",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    connected = platform.connect("harbor", "amy")
    assert connected["status"] != "success"


def test_configure_an_unknown_endpoint_says_how_to_find_one(cli_env: dict[str, str]) -> None:
    result = run_cli(cli_env, "catalog", "configure", "no-such-endpoint", "--client-id", "x")
    assert result.returncode == 1
    assert "catalog search" in result.stderr


def test_sync_sandbox_lists_the_sandbox_systems(cli_env: dict[str, str], database_url: str) -> None:
    result = run_cli(cli_env, "catalog", "sync-sandbox", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == {"brands": 3, "portals": 3, "endpoints": 3}
    listed = run_cli(cli_env, "catalog", "search", "", "--mode", "test", "--json")
    names = [b["name"] for b in json.loads(listed.stdout)["results"]]
    assert len(names) == 3
    assert all(name.endswith("(Sandbox)") for name in names)
    assert (
        httpx.URL(json.loads(listed.stdout)["results"][0]["portals"][0]["endpoints"][0]["url"]).host
        == "127.0.0.1"
    )
