"""The `data` of each webhook event type, as a typed model (DESIGN §2, docs/webhooks.md).

Producers build an event through its model (or, from a dict, `payload_of`) and hand it to
`outbox.emit`, which takes nothing else: a misspelt field, a missing one or a wrong type fails
where the event is made, not in a customer's receiver. The field tables of docs/webhooks.md are
checked against these models by tests/unit/webhooks/test_payload_docs.py, both ways.

Field order is the order of the JSON object sent (the compat payloads' order). Timestamps are
sent as Python's `isoformat()` writes them (`2026-11-29T01:04:05.678000+00:00`), as before the
models existed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer

from ehiconnect.vocabulary import ConnectionStatus, EventType, ExportFailureReason


def _isoformat(moment: dt.datetime) -> str:
    return moment.isoformat()


Timestamp = Annotated[AwareDatetime, PlainSerializer(_isoformat, return_type=str)]


class EventPayload(BaseModel):
    """The `data` of one event type; `event_type` says which."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_type: ClassVar[EventType]

    def data(self) -> dict[str, Any]:
        """The JSON object stored with the event and sent as the envelope's `data`."""
        return self.model_dump(mode="json")


class ConnectionSuccess(EventPayload):
    """A patient connected (or reconnected) a health system through the widget."""

    event_type: ClassVar[EventType] = EventType.CONNECTION_SUCCESS

    org_connection_id: str
    endpoint_id: str
    portal_id: str | None
    brand_id: str | None
    connection_status: Literal[ConnectionStatus.AUTHORIZED]
    platform_type: str
    scope: str | None
    consent_expires_at: Timestamp | None
    external_id: str | None
    external_state: str | None
    request_id: str


class AuthorizationRevoked(EventPayload):
    """A connection's tokens are gone: revoked by the customer, or refused by the health system."""

    event_type: ClassVar[EventType] = EventType.AUTHORIZATION_REVOKED

    org_connection_id: str
    endpoint_id: str
    portal_id: str | None
    brand_id: str | None
    platform_type: str
    connection_status: Literal[ConnectionStatus.REVOKED]


class DownloadLink(BaseModel):
    """One file of a finished export."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    export_type: Literal["jsonl"] = "jsonl"
    content_type: Literal["application/fhir+ndjson"] = "application/fhir+ndjson"
    expires_at: Timestamp
    size: int
    sha256: str


class ExportStats(BaseModel):
    """What a finished export holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total_resources: int
    total_by_resource_type: dict[str, int]


class EhiExportSuccess(EventPayload):
    """An export finished; its file can be downloaded until the links expire."""

    event_type: ClassVar[EventType] = EventType.EHI_EXPORT_SUCCESS

    org_connection_id: str
    task_id: str
    org_id: str
    download_links: list[DownloadLink]
    stats: ExportStats


class EhiExportFailed(EventPayload):
    """An export ended without a file."""

    event_type: ClassVar[EventType] = EventType.EHI_EXPORT_FAILED

    org_connection_id: str
    task_id: str
    org_id: str
    failure_reason: ExportFailureReason
    failure_description: str


class RequestHealthSystem(EventPayload):
    """A patient asked, from the widget, for a health system the catalog lacks."""

    event_type: ClassVar[EventType] = EventType.REQUEST_HEALTH_SYSTEM

    email: str
    name: str
    subject: str
    body: str
    external_id: str | None
    org_id: str
    support_request_id: str


class WebhookTest(EventPayload):
    """`webhook.test`: any JSON object (the test command sends `endpoint_id` and `message`)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    event_type: ClassVar[EventType] = EventType.WEBHOOK_TEST


PAYLOADS: tuple[type[EventPayload], ...] = (
    ConnectionSuccess,
    AuthorizationRevoked,
    EhiExportSuccess,
    EhiExportFailed,
    RequestHealthSystem,
    WebhookTest,
)

_MODELS: dict[EventType, type[EventPayload]] = {model.event_type: model for model in PAYLOADS}


def payload_of(event_type: str, data: Mapping[str, Any]) -> EventPayload:
    """`data` through the model of `event_type`, for code that gathers an event's fields in a
    dict: pydantic's ValidationError names a field that is missing, unknown or of the wrong type.
    """
    return _MODELS[EventType(event_type)].model_validate(data)
