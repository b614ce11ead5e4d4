"""A run's progress on PostgreSQL (`exports.progress.record_progress`): counters add up on the
task's row, and a write made after the customer cancelled the export says so (the run stops)."""

from __future__ import annotations

from typing import Any

import httpx

from ehiconnect.exports.progress import record_progress
from ehiconnect.runtime import Runtime
from ehiconnect.vocabulary import ExportPhase
from tests.integration.consent.conftest import Platform
from tests.integration.exports.support import start, status


async def test_progress_adds_up_until_the_export_is_cancelled(
    platform: Platform, runtime: Runtime
) -> None:
    task_id = start(platform, platform.connect("harbor", "tina")["org_connection_id"])
    counts: dict[str, Any] = {"requests": 7, "retries": 1, "extra": {"critical_path": 3}}

    first = await record_progress(
        runtime.database,
        task_id,
        phase=ExportPhase.RESOURCES,
        resources=5,
        attachment_bytes=100,
        **counts,
    )
    second = await record_progress(
        runtime.database, task_id, phase=None, resources=2, attachment_bytes=0, **counts
    )

    assert (first, second) == (True, True)
    progress = status(platform, task_id)["progress"]
    assert progress["phase"] == ExportPhase.RESOURCES
    assert (progress["resources"], progress["attachment_bytes"]) == (7, 100)
    assert (progress["requests"], progress["retries"], progress["critical_path"]) == (7, 1, 3)

    cancelled = httpx.delete(
        f"{platform.api.url}/v1/fhir/bulkstatus/{task_id}", auth=platform.auth()
    )
    assert cancelled.status_code == 202
    assert not await record_progress(
        runtime.database, task_id, phase=None, resources=1, attachment_bytes=0, **counts
    )
