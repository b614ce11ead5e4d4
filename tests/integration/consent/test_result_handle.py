"""The widget's fallback over real HTTP: reading a sign-in's result with its result handle.

The popup's callback page normally posts the result to the widget; a portal that sends
`Cross-Origin-Opener-Policy: same-origin` cuts that path, so the widget also starts each flow with
`result_challenge` and polls `POST /v1/bridge/connect/result` with the handle behind it. These
tests drive the real platform and the sandbox's portal the way the popup would, and poll the way
the widget does.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import httpx
import psycopg
import pytest

from ehiconnect.clock import FrozenClock
from ehiconnect.consent.pkce import s256_challenge
from ehiconnect.orgs.service import CreatedOrg
from ehiconnect.runtime import Runtime
from ehiconnect.settings import Settings
from tests.integration.conftest import make_org
from tests.integration.consent.conftest import (
    APP_ORIGIN,
    APP_REDIRECT,
    Platform,
    page_result,
    query_of,
)
from tests.support.portal import sign_in

OTHER_LOOPBACK = "http://localhost:4000"  # allowed in test mode, but not the page that started


def new_handle() -> tuple[str, str]:
    """A result handle and its challenge, made as the widget makes them."""
    handle = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return handle, s256_challenge(handle)


def poll(
    platform: Platform,
    handle: str,
    *,
    origin: str | None = APP_ORIGIN,
    public_id: str | None = None,
) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    return httpx.post(
        f"{platform.api.url}/v1/bridge/connect/result",
        params={"public_id": public_id or platform.org.keys["test"].public_id},
        json={"result_handle": handle},
        headers=headers,
        timeout=10,
    )


def data_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    data: dict[str, Any] = body["data"]
    return data


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["success"] is False, body
    assert body["error_description"]
    return response.status_code, body["error"]


def widget_payload(page: httpx.Response) -> dict[str, Any]:
    return {k: v for k, v in page_result(page).items() if not k.startswith("_")}


def flow_row(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(
            "SELECT state_hash, result_handle_hash, result, finished_at, result_read_at, "
            "widget_origin FROM consent_flows"
        )
        [row] = cursor.fetchall()
        names = [column.name for column in cursor.description or ()]
    return dict(zip(names, row, strict=True))


# ---- the happy path -----------------------------------------------------------------------------


def test_the_widget_reads_a_finished_sign_in_once(platform: Platform, database_url: str) -> None:
    handle, challenge = new_handle()
    callback = platform.callback("harbor", "amy", result_challenge=challenge)

    pending = poll(platform, handle)
    assert data_of(pending)["status"] == "pending"
    assert 0 < data_of(pending)["expires_in"] <= 20 * 60
    assert pending.headers["access-control-allow-origin"] == APP_ORIGIN
    assert pending.headers["cache-control"] == "no-store"

    page = platform.finish(callback)
    posted = widget_payload(page)
    assert posted["status"] == "success"
    # The page closes itself even when the portal cut its opener: the widget polls instead.
    assert '"closeWithoutOpener":true' in page.text

    first = poll(platform, handle)
    assert data_of(first) == posted  # exactly what widget.complete is built from
    assert first.headers["access-control-allow-origin"] == APP_ORIGIN

    again = poll(platform, handle)
    assert error_of(again) == (410, "result_handle_used")
    assert again.headers["access-control-allow-origin"] == APP_ORIGIN  # the widget can read why

    row = flow_row(database_url)
    # Stored hashed, like the state; never the handle, its challenge, or the state itself.
    assert row["result_handle_hash"] == hashlib.sha256(handle.encode()).hexdigest()
    assert row["result_handle_hash"] != row["state_hash"]
    assert row["result"] is None  # handed out, then dropped
    assert row["finished_at"] is not None
    assert row["result_read_at"] is not None
    with psycopg.connect(database_url) as conn:
        everything = str(conn.execute("SELECT * FROM consent_flows").fetchall())
    assert handle not in everything
    assert challenge not in everything


def test_a_declined_sign_in_is_read_as_the_error_connection_failed_carries(
    platform: Platform,
) -> None:
    handle, challenge = new_handle()
    page = platform.finish(
        platform.callback("summit", "tess", decision="deny", result_challenge=challenge)
    )

    data = data_of(poll(platform, handle))

    assert data == widget_payload(page)
    assert data == {
        "status": "failed",
        "error": "access_denied",
        "error_description": "the patient declined to share their records",
    }


def test_a_reconnect_reports_the_same_connection(platform: Platform) -> None:
    first = platform.connect("harbor", "amy")
    handle, challenge = new_handle()
    url = str(
        httpx.URL(
            f"{platform.api.url}/v1/bridge/reconnect",
            params={
                "public_id": platform.org.keys["test"].public_id,
                "reconnect_org_connection_id": first["org_connection_id"],
                "result_challenge": challenge,
            },
        )
    )
    response = platform.start(url)
    assert response.status_code == 302, response.text
    platform.finish(
        sign_in(
            platform.browser, response.headers["location"], username="amy", password="amy-sandbox"
        )
    )

    assert data_of(poll(platform, handle))["org_connection_id"] == first["org_connection_id"]


def test_a_replayed_callback_does_not_replace_the_result(platform: Platform) -> None:
    handle, challenge = new_handle()
    callback = platform.callback("harbor", "tina", result_challenge=challenge)
    success = widget_payload(platform.finish(callback))

    replay = platform.finish(callback)

    assert page_result(replay)["error"] == "state_reused"
    assert '"closeWithoutOpener":false' in replay.text
    assert data_of(poll(platform, handle)) == success


def test_flows_without_a_challenge_keep_no_result(platform: Platform, database_url: str) -> None:
    page = platform.finish(platform.callback("harbor", "amy"))

    assert page_result(page)["status"] == "success"
    assert '"closeWithoutOpener":false' in page.text
    row = flow_row(database_url)
    assert (row["result_handle_hash"], row["result"], row["finished_at"]) == (None, None, None)


# ---- expiry -------------------------------------------------------------------------------------


def test_a_sign_in_never_finished_expires_with_its_flow(
    platform: Platform, platform_clock: FrozenClock
) -> None:
    handle, challenge = new_handle()
    platform.authorize("harbor", result_challenge=challenge)
    platform_clock.advance(19 * 60)
    assert data_of(poll(platform, handle))["expires_in"] == 60

    platform_clock.advance(60)

    assert error_of(poll(platform, handle)) == (410, "result_expired")


def test_a_result_nobody_read_expires_too(platform: Platform, platform_clock: FrozenClock) -> None:
    handle, challenge = new_handle()
    platform.finish(platform.callback("harbor", "amy", result_challenge=challenge))

    platform_clock.advance(20 * 60)

    assert error_of(poll(platform, handle)) == (410, "result_expired")


def test_a_sign_in_finished_too_late_reports_flow_expired(
    platform: Platform, platform_clock: FrozenClock
) -> None:
    handle, challenge = new_handle()
    callback = platform.callback("harbor", "amy", result_challenge=challenge)
    platform_clock.advance(20 * 60 + 1)

    page = platform.finish(callback)

    assert page_result(page)["error"] == "flow_expired"
    # Finished just now, so still readable: the widget learns why instead of waiting on.
    assert data_of(poll(platform, handle))["error"] == "flow_expired"


# ---- who may read -------------------------------------------------------------------------------


def test_only_the_page_that_started_the_flow_reads_it(platform: Platform) -> None:
    handle, challenge = new_handle()
    platform.finish(platform.callback("harbor", "amy", result_challenge=challenge))

    assert error_of(poll(platform, handle, origin="https://evil.example")) == (
        403,
        "origin_not_allowed",
    )
    assert error_of(poll(platform, handle, origin=OTHER_LOOPBACK)) == (403, "origin_not_allowed")
    assert error_of(poll(platform, handle, origin=None)) == (403, "origin_not_allowed")

    # None of that used the handle up.
    assert data_of(poll(platform, handle))["status"] == "success"


def test_without_a_referer_any_registered_origin_with_the_handle_reads_it(
    platform: Platform,
) -> None:
    handle, challenge = new_handle()
    response = platform.start(platform.connect_url("harbor", result_challenge=challenge), None)
    assert response.status_code == 302

    assert error_of(poll(platform, handle, origin="https://evil.example"))[1] == (
        "origin_not_allowed"
    )
    assert data_of(poll(platform, handle, origin=OTHER_LOOPBACK))["status"] == "pending"


async def test_unknown_and_foreign_handles_are_not_found(
    platform: Platform, runtime: Runtime
) -> None:
    handle, challenge = new_handle()
    platform.finish(platform.callback("harbor", "amy", result_challenge=challenge))
    other: CreatedOrg = await make_org(runtime, "Other Health", origins=[APP_ORIGIN])

    assert error_of(poll(platform, new_handle()[0])) == (404, "result_handle_unknown")
    # The challenge is not the handle: someone who saw the popup's URL cannot read the result.
    assert error_of(poll(platform, challenge)) == (404, "result_handle_unknown")
    assert error_of(poll(platform, handle, public_id=other.keys["test"].public_id)) == (
        404,
        "result_handle_unknown",
    )
    assert error_of(poll(platform, handle, public_id=platform.org.keys["live"].public_id)) == (
        404,
        "result_handle_unknown",
    )
    assert error_of(poll(platform, "not-a-handle")) == (400, "invalid_request")
    assert data_of(poll(platform, handle))["status"] == "success"


# ---- starting a flow with a challenge ----------------------------------------------------------


def test_a_challenge_works_for_one_flow_only(platform: Platform) -> None:
    _, challenge = new_handle()
    platform.authorize("harbor", result_challenge=challenge)

    again = platform.start(platform.connect_url("cedar", result_challenge=challenge))

    assert again.status_code == 409
    assert page_result(again)["error"] == "result_challenge_reused"


@pytest.mark.parametrize(
    "challenge", ["short", "x" * 43 + "=", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"]
)
def test_a_malformed_challenge_is_refused_in_the_popup(platform: Platform, challenge: str) -> None:
    response = platform.start(platform.connect_url("harbor", result_challenge=challenge))

    assert response.status_code == 400
    assert page_result(response)["error"] == "invalid_request"


def test_a_challenge_with_a_redirect_uri_is_refused(platform: Platform) -> None:
    _, challenge = new_handle()

    response = platform.start(
        platform.connect_url("harbor", redirect_uri=APP_REDIRECT, result_challenge=challenge)
    )

    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "invalid_request"


# ---- CORS and rate limits, as for the other browser endpoints -----------------------------------


def test_the_preflight_answers_registered_origins_only(platform: Platform) -> None:
    url = f"{platform.api.url}/v1/bridge/connect/result"
    params = {"public_id": platform.org.keys["test"].public_id}
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }

    allowed = httpx.options(url, params=params, headers={"Origin": APP_ORIGIN, **ask})
    refused = httpx.options(url, params=params, headers={"Origin": "https://evil.example", **ask})

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused.headers
    assert error_of(refused) == (403, "origin_not_allowed")


def test_polling_is_rate_limited_like_the_other_public_endpoints(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    settings.api.public_rate_limit_burst = 3
    settings.api.public_rate_limit_per_minute = 1
    platform: Platform = request.getfixturevalue("platform")
    handle, _ = new_handle()

    statuses = [poll(platform, handle).status_code for _ in range(4)]

    assert statuses == [404, 404, 404, 429]
