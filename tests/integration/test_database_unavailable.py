"""When PostgreSQL refuses or drops connections, the API answers 503 with Retry-After, not 500.

A balancer or client then retries later, and the connection it sent the request on stays usable
(uvicorn drops the keep-alive connection after a 500). When the database is back, the same
process serves again without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.testing.servers import ThreadedServer
from tests.integration.conftest import make_org
from tests.support.database import PostgresForTests

pytestmark = pytest.mark.integration


@pytest.fixture
async def org(runtime: Runtime, api: ThreadedServer) -> CreatedOrg:
    return await make_org(runtime)


@pytest.fixture
def refuse_connections(
    postgres: PostgresForTests, database_url: str
) -> Iterator[Callable[[], None]]:
    name = database_url.partition("?")[0].rsplit("/", 1)[1]

    def refuse() -> None:
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

    yield refuse
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_a_refused_database_is_a_503_with_retry_after_and_service_resumes(
    api: ThreadedServer,
    org: CreatedOrg,
    refuse_connections: Callable[[], None],
    postgres: PostgresForTests,
    database_url: str,
) -> None:
    public_id = org.keys["test"].public_id
    private = (public_id, org.keys["test"].private_key)
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert client.get("/v1/bridge/org", params={"public_id": public_id}).status_code == 200
        refuse_connections()
        for path, auth in (
            (f"/v1/bridge/org?public_id={public_id}", None),
            ("/v1/bridge/org_connection/00000000-0000-4000-8000-000000000000", private),
            ("/v1/fhir/bulkstatus/" + "0" * 32, private),
        ):
            refused = client.get(path, auth=auth)
            assert refused.status_code == 503, (path, refused.text)
            assert int(refused.headers["retry-after"]) > 0
            assert "success" in refused.json() or refused.json()["resourceType"]
        # A private route with a body checks the key before reading it: that check too.
        export = client.post(
            "/v1/bridge/fhir/ehi-export",
            json={"org_connection_id": "00000000-0000-4000-8000-000000000000"},
            auth=private,
        )
        assert export.status_code == 503, export.text
        assert export.json()["error"] == "database_unavailable"
        body = client.get(f"/v1/bridge/org?public_id={public_id}").json()
        assert body["error"] == "database_unavailable"
        assert "retry" in body["error_description"]

        name = database_url.partition("?")[0].rsplit("/", 1)[1]
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        # The same connection and the same process serve again.
        assert client.get("/v1/bridge/org", params={"public_id": public_id}).status_code == 200
