"""Download links end in the file's name, as Fasten's do (#16 item 5); older links keep working.

Fasten's quickstart names the downloaded file after the link's last segment, so it must be
`YYYY-MM-DD-<uuid>.jsonl`.
"""

from __future__ import annotations

import re
import uuid

import psycopg

from ehiconnect.runtime import Runtime
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import download, drain, start, status

FILE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}-[0-9a-f-]{36}\.jsonl")


async def test_the_download_link_ends_in_a_dated_jsonl_name(
    platform: Platform, runtime: Runtime, database_url: str
) -> None:
    connection_id = platform.connect("harbor", "tina")["org_connection_id"]
    task_id = start(platform, connection_id)
    await drain(runtime)
    done = status(platform, task_id)
    file_id = done["files"][0]["file_id"]
    assert FILE_NAME.fullmatch(file_id), file_id
    with psycopg.connect(database_url) as conn:
        [(data,)] = conn.execute(
            "SELECT data FROM webhook_events WHERE type = 'patient.ehi_export_success'"
        ).fetchall()
    [link] = data["download_links"]
    assert link["url"].endswith(f"/download/{file_id}")
    name = link["url"].rsplit("/", 1)[1]
    assert name.endswith(".jsonl")
    body = download(platform, link["url"])
    assert body.status_code == 200
    assert body.content.startswith(b'{"resourceType":"Patient"')

    # An export made before file names were ids: its bare-UUID link still answers.
    old_id = str(uuid.uuid4())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE export_tasks SET file_id = %s WHERE task_id = %s", (old_id, task_id))
    old = download(
        platform, f"{platform.api.url}/v1/bridge/fhir/ehi-export/{task_id}/download/{old_id}"
    )
    assert old.status_code == 200
    assert old.content == body.content
