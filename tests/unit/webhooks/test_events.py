import datetime as dt
import uuid

import orjson
import pytest

from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks import events


def test_envelope_has_the_compat_fields_and_a_utc_date() -> None:
    event_id = events.new_event_id()
    assert uuid.UUID(event_id).version == 4
    moment = dt.datetime(2026, 11, 29, 3, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    envelope = events.build_envelope(
        event_id=event_id,
        type=EventType.WEBHOOK_TEST,
        api_mode="test",
        data={"hello": "world"},
        date=moment,
    )
    assert envelope == {
        "api_mode": "test",
        "date": "2026-11-29T01:04:05.678Z",
        "id": event_id,
        "type": "webhook.test",
        "data": {"hello": "world"},
    }
    assert orjson.loads(events.envelope_body(envelope)) == envelope


def test_event_type_names_are_the_compat_ones() -> None:
    expected = {
        "patient.connection_success",
        "patient.authorization_revoked",
        "patient.ehi_export_success",
        "patient.ehi_export_failed",
        "patient.request_health_system",
        "webhook.test",
    }
    assert expected == events.EVENT_TYPES


def test_unknown_event_types_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"patient\.nope"):
        events.validate_event_types(["webhook.test", "patient.nope"])
    assert events.validate_event_types(["webhook.test", "webhook.test"]) == ("webhook.test",)
