from __future__ import annotations

import datetime as dt

import orjson
import pytest
import standardwebhooks

from ehiconnect.signing import generate_secret
from ehiconnect.tracker.consent_log import InvalidWidgetEvent, parse_widget_event
from ehiconnect.tracker.intake import Accepted, Rejected, check_webhook

NOW = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)


def _signed(secret: str, body: bytes, when: dt.datetime, msg_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(msg_id, when, body.decode()),
    }


BODY = orjson.dumps({"type": "patient.ehi_export_success", "data": {"task_id": "t"}})


def _check(headers: dict[str, str], secrets: list[str], body: bytes = BODY) -> object:
    return check_webhook(body, headers, secrets, now=int(NOW.timestamp()), tolerance_seconds=300)


def test_genuine_webhook_is_accepted_with_any_active_secret() -> None:
    old, new = generate_secret(), generate_secret()
    verdict = _check(_signed(new, BODY, NOW), [old, new])
    assert isinstance(verdict, Accepted)
    assert verdict.webhook_id == "msg_1"
    assert verdict.envelope["type"] == "patient.ehi_export_success"


@pytest.mark.parametrize("minutes", [-6, 6])
def test_timestamp_outside_five_minutes_is_rejected(minutes: int) -> None:
    secret = generate_secret()
    verdict = _check(_signed(secret, BODY, NOW + dt.timedelta(minutes=minutes)), [secret])
    assert isinstance(verdict, Rejected)
    assert verdict.status == 401
    assert "tolerance" in verdict.description


def test_wrong_secret_or_tampered_body_is_rejected() -> None:
    secret = generate_secret()
    assert isinstance(_check(_signed(generate_secret(), BODY, NOW), [secret]), Rejected)
    tampered = BODY.replace(b'"t"', b'"u"')
    assert isinstance(_check(_signed(secret, BODY, NOW), [secret], tampered), Rejected)


def test_without_configured_secret_nothing_is_accepted() -> None:
    verdict = _check(_signed(generate_secret(), BODY, NOW), [])
    assert isinstance(verdict, Rejected)
    assert verdict.status == 503


def test_signed_but_not_an_envelope_is_a_bad_request() -> None:
    secret = generate_secret()
    body = b'{"no": "type"}'
    verdict = _check(_signed(secret, body, NOW), [secret], body)
    assert isinstance(verdict, Rejected)
    assert verdict.status == 400


def test_widget_complete_lists_every_connected_account() -> None:
    event = parse_widget_event(
        {
            "api_mode": "test",
            "event_type": "widget.complete",
            "external_id": "user-42",
            "data": orjson.dumps(
                [{"org_connection_id": "c1", "brand_id": "b1"}, {"org_connection_id": "c2"}]
            ).decode(),
        }
    )
    assert [a.org_connection_id for a in event.accounts] == ["c1", "c2"]
    assert event.accounts[0].brand_id == "b1"
    assert {a.external_id for a in event.accounts} == {"user-42"}
    assert {a.api_mode for a in event.accounts} == {"test"}


def test_same_event_has_the_same_key_whatever_the_key_order() -> None:
    a = {"event_type": "patient.connection_success", "data": {"org_connection_id": "c1", "x": 1}}
    b = {"data": {"x": 1, "org_connection_id": "c1"}, "event_type": "patient.connection_success"}
    assert parse_widget_event(a).key == parse_widget_event(b).key


@pytest.mark.parametrize(
    "payload",
    [
        {"event_type": "widget.close", "data": []},
        {"event_type": "widget.complete", "data": []},
        {"event_type": "widget.complete", "data": [{"brand_id": "b"}]},
        ["not", "an", "object"],
    ],
)
def test_other_payloads_are_refused(payload: object) -> None:
    with pytest.raises(InvalidWidgetEvent):
        parse_widget_event(payload)
