"""`POST /v1/support/request`: stored, announced as `patient.request_health_system`, listed by the
CLI, rate limited, and every field bounded (#16 item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ehiconnect.api.app import create_app
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from tests.integration.conftest import make_org

ORIGIN = "https://app.acme.example"
ASK = {
    "email": "amy@example.com",
    "name": "Amy Patient",
    "subject": "Riverside Family Practice",
    "body": "My clinic is Riverside Family Practice in Boise.\nCould you add it?",
}


@pytest.fixture
async def org(runtime: Runtime) -> CreatedOrg:
    return await make_org(runtime, origins=[ORIGIN])


def _post(api: ThreadedServer, org: CreatedOrg, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{api.url}/v1/support/request",
        params={"public_id": org.keys["test"].public_id},
        json=body,
        headers={"Origin": ORIGIN, **headers},
        timeout=10,
    )


def _rows(database_url: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(statement, params).fetchall()


async def test_a_request_is_stored_and_announced_to_the_organization(
    api: ThreadedServer, org: CreatedOrg, database_url: str, tmp_path: Path
) -> None:
    response = _post(api, org, {**ASK, "external_id": "user-42"})

    assert response.status_code == 201, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    request_id = response.json()["data"]["id"]
    [(org_id, mode, email, body, event_id)] = _rows(
        database_url, "SELECT org_id, api_mode, email, body, event_id FROM support_requests"
    )
    assert (org_id, mode, email, body) == (org.org_id, "test", ASK["email"], ASK["body"])
    [(event_type, event_mode, data)] = _rows(
        database_url,
        "SELECT type, api_mode, data FROM webhook_events WHERE event_id = %s",
        event_id,
    )
    assert (event_type, event_mode) == ("patient.request_health_system", "test")
    # The payload docs/webhooks.md lists.
    assert data == {
        **ASK,
        "external_id": "user-42",
        "org_id": org.org_id,
        "support_request_id": request_id,
    }

    listed = subprocess.run(
        [sys.executable, "-m", "ehiconnect", "support", "list", "--json"],
        env={
            **os.environ,
            "EHICONNECT_DATABASE_URL": database_url,
            "EHICONNECT_DATA_DIR": str(tmp_path / "data"),  # the same vault keys
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["org_id"], row["subject"]) == (request_id, org.org_id, ASK["subject"])
    assert row["event_id"] == event_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "a" * 250 + "@example.com"}, "email"),
        ({"name": "n" * 201}, "name"),
        ({"subject": "s" * 201}, "subject"),
        ({"body": "b" * 5001}, "body"),
        ({"external_id": "x" * 201}, "external_id"),
        ({"email": "not an address"}, "email"),
        ({"name": "Amy\u0000"}, "name"),
        ({"body": "hello\u0000"}, "body"),
        ({"subject": "line\nbreak"}, "subject"),
        ({"name": ""}, "name"),
    ],
)
async def test_bad_fields_get_the_envelope_and_nothing_is_stored(
    api: ThreadedServer, org: CreatedOrg, database_url: str, change: dict[str, str], field: str
) -> None:
    response = _post(api, org, {**ASK, **change})

    assert response.status_code == 422, response.text
    assert response.json()["success"] is False
    assert field in response.json()["error_description"]
    # The widget can read why (the error carries CORS headers for a registered origin).
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert _rows(database_url, "SELECT count(*) FROM support_requests") == [(0,)]


async def test_a_missing_field_and_a_foreign_origin_are_refused(
    api: ThreadedServer, org: CreatedOrg, database_url: str
) -> None:
    missing = _post(api, org, {k: v for k, v in ASK.items() if k != "email"})
    assert missing.status_code == 422
    assert "email" in missing.json()["error_description"]

    foreign = _post(api, org, ASK, Origin="https://evil.example")
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "origin_not_allowed"
    assert _rows(database_url, "SELECT count(*) FROM support_requests") == [(0,)]


@pytest.fixture
def limited_api(tmp_path: Path, database_url: str) -> Iterator[ThreadedServer]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api={"public_rate_limit_per_minute": 1, "public_rate_limit_burst": 3},
    )
    with serve_in_thread(create_app(settings)) as server:
        yield server


async def test_requests_are_rate_limited_like_the_other_public_routes(
    limited_api: ThreadedServer, org: CreatedOrg, database_url: str
) -> None:
    answers = [_post(limited_api, org, ASK).status_code for _ in range(5)]

    assert answers[:3] == [201, 201, 201]
    assert answers[3:] == [429, 429]
    assert _rows(database_url, "SELECT count(*) FROM support_requests") == [(3,)]
