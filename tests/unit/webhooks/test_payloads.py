"""Events are built through their payload models: a wrong event fails where it is made."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks.payloads import (
    AuthorizationRevoked,
    DownloadLink,
    EhiExportFailed,
    WebhookTest,
    payload_of,
)

FAILED = {
    "org_connection_id": "c-1",
    "task_id": "t-1",
    "org_id": "o-1",
    "failure_reason": "timeout",
    "failure_description": "past the deadline",
}


def test_a_payload_is_its_data_in_the_documented_order() -> None:
    event = payload_of(EventType.EHI_EXPORT_FAILED, FAILED)
    assert isinstance(event, EhiExportFailed)
    assert event.event_type == "patient.ehi_export_failed"
    assert list(event.data().items()) == list(FAILED.items())


def test_an_unknown_type_names_itself() -> None:
    with pytest.raises(ValueError, match=r"patient\.made_up"):
        payload_of("patient.made_up", {})


def test_a_missing_or_unknown_field_is_refused_where_the_event_is_made() -> None:
    with pytest.raises(ValidationError, match="failure_description"):
        payload_of(EventType.EHI_EXPORT_FAILED, {**FAILED, "failure_description": None})
    with pytest.raises(ValidationError, match="task_id"):
        payload_of(EventType.EHI_EXPORT_FAILED, {k: v for k, v in FAILED.items() if k != "task_id"})
    with pytest.raises(ValidationError, match="extra"):
        payload_of(EventType.EHI_EXPORT_FAILED, {**FAILED, "n": 1})


def test_a_failure_reason_outside_the_published_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="failure_reason"):
        payload_of(EventType.EHI_EXPORT_FAILED, {**FAILED, "failure_reason": "crashed"})


def test_a_revoked_event_says_revoked() -> None:
    fields = {
        "org_connection_id": "c-1",
        "endpoint_id": "e-1",
        "portal_id": None,
        "brand_id": None,
        "platform_type": "epic",
    }
    assert AuthorizationRevoked(**fields, connection_status="revoked").data()["connection_status"]
    with pytest.raises(ValidationError, match="connection_status"):
        AuthorizationRevoked(**fields, connection_status="authorized")


def test_timestamps_are_sent_as_isoformat_writes_them_and_must_have_a_zone() -> None:
    expires = dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC)
    link = DownloadLink(url="https://x/f", expires_at=expires, size=3, sha256="0" * 64)
    assert link.model_dump(mode="json")["expires_at"] == "2026-12-01T08:30:00+00:00"
    assert link.model_dump(mode="json")["export_type"] == "jsonl"
    with pytest.raises(ValidationError, match="expires_at"):
        DownloadLink(url="https://x/f", expires_at=expires.replace(tzinfo=None), size=3, sha256="")


def test_webhook_test_takes_any_object() -> None:
    assert WebhookTest.model_validate({"n": 1, "nested": {"a": [1]}}).data() == {
        "n": 1,
        "nested": {"a": [1]},
    }
