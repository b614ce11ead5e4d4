"""`tracker serve`'s `/readyz` over real HTTP: ready, then its storage lost and named."""

from __future__ import annotations

import shutil
import time

import httpx

from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker.settings import TrackerSettings
from tests.integration.tracker.conftest import (  # noqa: F401 (fixtures)
    platform,
    receiver,
    tracker_settings,
)


def test_tracker_readyz_names_lost_storage(
    receiver: ThreadedServer,  # noqa: F811
    tracker_settings: TrackerSettings,  # noqa: F811
) -> None:
    ready = httpx.get(f"{receiver.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["data"]["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "storage": "ok",
    }
    store = tracker_settings.storage_dir
    assert store is not None
    shutil.rmtree(store)
    store.write_bytes(b"")  # the directory gone, a file in its place
    for _ in range(100):  # the answer is cached for about a second
        response = httpx.get(f"{receiver.url}/readyz")
        if response.status_code == 503:
            break
        time.sleep(0.05)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "not_ready"
    assert response.json()["error_description"].startswith("not ready: storage: not writable")
    assert int(response.headers["retry-after"]) > 0
