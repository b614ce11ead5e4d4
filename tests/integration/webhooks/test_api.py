"""The webhook admin and events API over real HTTP, authenticated with an organization's keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute

from ehiconnect.api.app import create_app
from ehiconnect.api.routes import webhooks as webhook_routes
from ehiconnect.clock import FrozenClock
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings, WebhookSettings
from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.vocabulary import EventType
from tests.integration.webhooks.helpers import deliverer, emit, sample_data
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def api_url(settings: Settings, clock: FrozenClock) -> Iterator[str]:
    app = create_app(settings, clock=clock)
    mounted = {r.path for r in app.routes if isinstance(r, APIRoute)}
    if "/v1/webhooks/events" not in mounted:  # until the app factory mounts the router itself
        app.include_router(webhook_routes.router, prefix="/v1")
    with serve_in_thread(app) as server:
        yield server.url


def client(api_url: str, org: CreatedOrg, mode: str = "test") -> httpx.Client:
    keys = org.keys["test" if mode == "test" else "live"]
    return httpx.Client(
        base_url=api_url + "/v1/webhooks", auth=(keys.public_id, keys.private_key), timeout=10
    )


async def test_endpoint_lifecycle_through_the_api(
    api_url: str, org: CreatedOrg, receiver_server: ThreadedServer
) -> None:
    with client(api_url, org) as api:
        created = api.post("/endpoints", json={"url": receiver_server.url + "/a"})
        assert created.status_code == 201, created.text
        data = created.json()["data"]
        assert data["secret"].startswith("whsec_")
        endpoint_id = data["endpoint_id"]

        again = api.post("/endpoints", json={"url": receiver_server.url + "/a"})
        assert again.status_code == 409
        assert again.json()["error"] == "endpoint_url_taken"

        bad = api.post("/endpoints", json={"url": "x", "event_types": ["patient.nope"]})
        assert bad.status_code == 400

        listed = api.get("/endpoints").json()["data"]
        assert [e["endpoint_id"] for e in listed] == [endpoint_id]

        rotated = api.post(f"/endpoints/{endpoint_id}/rotate-secret").json()["data"]
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != data["secret"]

        disabled = api.post(f"/endpoints/{endpoint_id}/disable").json()["data"]
        assert disabled["status"] == "disabled"
        assert api.post(f"/endpoints/{endpoint_id}/test").status_code == 409
        enabled = api.post(f"/endpoints/{endpoint_id}/enable").json()["data"]
        assert enabled["status"] == "enabled"

        assert api.delete(f"/endpoints/{endpoint_id}").status_code == 200
        assert api.get("/endpoints").json()["data"] == []
        assert api.post(f"/endpoints/{endpoint_id}/enable").status_code == 404


async def test_keys_see_only_their_own_mode_and_organization(
    api_url: str, runtime: Runtime, org: CreatedOrg, receiver_server: ThreadedServer
) -> None:
    from tests.integration.conftest import make_org

    other = await make_org(runtime, name="Other")
    with client(api_url, org, "live") as live:
        endpoint_id = live.post("/endpoints", json={"url": receiver_server.url + "/l"}).json()[
            "data"
        ]["endpoint_id"]
    live_event = await emit(runtime, org.org_id, mode="live")
    with client(api_url, org, "test") as test:
        assert test.get("/endpoints").json()["data"] == []
        # The organization's own live endpoint and event: the one tenant rule names the key.
        for wrong_mode in (
            test.post(f"/endpoints/{endpoint_id}/disable"),
            test.post(f"/events/{live_event}/resend"),
        ):
            assert wrong_mode.status_code == 403
            assert wrong_mode.json()["error"] == "api_mode_mismatch"
            assert "use your live key" in wrong_mode.json()["error_description"]
        assert [e["id"] for e in test.get("/events").json()["data"]["events"]] == []
    with client(api_url, other, "live") as stranger:
        # Another organization's: as if there were none.
        for missing in (
            stranger.delete(f"/endpoints/{endpoint_id}"),
            stranger.post(f"/events/{live_event}/resend"),
        ):
            assert missing.status_code == 404
            assert missing.json()["error_description"].startswith("you have no webhook")
    with client(api_url, org, "live") as live:
        assert [e["status"] for e in live.get("/endpoints").json()["data"]] == ["enabled"]
    anonymous = httpx.get(api_url + "/v1/webhooks/endpoints")
    assert anonymous.status_code == 401


async def test_events_are_listed_by_page_type_and_time_and_can_be_resent(
    api_url: str,
    runtime: Runtime,
    clock: FrozenClock,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    start = clock.now()
    emitted = []
    for n in range(5):
        kind = EventType.EHI_EXPORT_SUCCESS if n % 2 == 0 else EventType.EHI_EXPORT_FAILED
        emitted.append(await emit(runtime, org.org_id, type=kind, data=sample_data(kind, n)))
        clock.advance(60)
    await emit(runtime, org.org_id, mode="live")

    with client(api_url, org) as api:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/events", params=params).json()["data"]
            seen += [e["id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == emitted

        failed = api.get("/events", params={"type": EventType.EHI_EXPORT_FAILED}).json()["data"]
        assert [e["id"] for e in failed["events"]] == [emitted[1], emitted[3]]
        assert failed["events"][0]["data"] == sample_data(EventType.EHI_EXPORT_FAILED, 1)
        assert set(failed["events"][0]) == {"api_mode", "date", "id", "type", "data"}

        since = (start + dt.timedelta(seconds=90)).isoformat()
        until = (start + dt.timedelta(seconds=210)).isoformat()
        window = api.get("/events", params={"since": since, "until": until}).json()["data"]
        assert [e["id"] for e in window["events"]] == emitted[2:4]

        assert api.get("/events", params={"cursor": "nonsense"}).status_code == 400

        # Subscribing later and re-sending: the receiver gets the old event, same id.
        endpoint = api.post("/endpoints", json={"url": receiver_server.url + "/r"}).json()
        assert endpoint["success"]
        resent = api.post(f"/events/{emitted[0]}/resend").json()["data"]
        assert resent == {"event_id": emitted[0], "deliveries": 1}
        assert api.post("/events/00000000-0000-4000-8000-000000000000/resend").status_code == 404

    async with deliverer(runtime, webhook_settings) as sender:
        await sender.run_until_idle()
    assert receiver.ids() == [emitted[0]]


async def test_test_event_goes_to_the_chosen_endpoint_only(
    api_url: str,
    runtime: Runtime,
    org: CreatedOrg,
    receiver: Receiver,
    receiver_server: ThreadedServer,
    webhook_settings: WebhookSettings,
) -> None:
    with client(api_url, org) as api:
        filtered = api.post(
            "/endpoints",
            json={
                "url": receiver_server.url + "/only",
                "event_types": [EventType.EHI_EXPORT_FAILED],
            },
        ).json()["data"]
        api.post("/endpoints", json={"url": receiver_server.url + "/other"})
        sent = api.post(f"/endpoints/{filtered['endpoint_id']}/test")
        assert sent.status_code == 202
        event_id = sent.json()["data"]["event_id"]

    async with deliverer(runtime, webhook_settings) as sender:
        await sender.run_until_idle()
    (got,) = receiver.received
    assert got.webhook_id == event_id
    assert got.envelope["type"] == "webhook.test"

    with client(api_url, org) as api:
        log = api.get(f"/endpoints/{filtered['endpoint_id']}/attempts").json()["data"]
    assert [(a["event_id"], a["status_code"], a["outcome"]) for a in log] == [
        (event_id, 200, "succeeded")
    ]
    assert log[0]["response_excerpt"] == "status 200"
