"""The one vocabulary: every event type, status, phase and failure reason the platform writes,
sends or reads, as a `StrEnum` each (DESIGN §2, §7).

Producers and consumers use these members, never the string literals; a member *is* its string
(`ExportStatus.PENDING == "pending"`), so stored rows, JSON and webhook payloads are unchanged.
The names marked (compat) are Fasten Connect's published ones.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Webhook event types (compat)."""

    CONNECTION_SUCCESS = "patient.connection_success"
    AUTHORIZATION_REVOKED = "patient.authorization_revoked"
    EHI_EXPORT_SUCCESS = "patient.ehi_export_success"
    EHI_EXPORT_FAILED = "patient.ehi_export_failed"
    REQUEST_HEALTH_SYSTEM = "patient.request_health_system"
    WEBHOOK_TEST = "webhook.test"


class ConnectionStatus(StrEnum):
    """`status` of an org connection (compat)."""

    AUTHORIZED = "authorized"
    REVOKED = "revoked"
    REFRESHING = "refreshing"


class ConsentEvent(StrEnum):
    """What an append-only consent record says happened."""

    GRANTED = "granted"
    RECONNECTED = "reconnected"
    REVOKED = "revoked"


class ExportStatus(StrEnum):
    """`status` of an export task. The API shows pending, success and failed (compat); a task the
    customer cancelled or deleted, or whose file expired, is kept with one of the others."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DELETED = "deleted"


class ExportPhase(StrEnum):
    """Where a running export is (`progress.phase`), in the order it passes them."""

    QUEUED = "queued"
    DISCOVER = "discover"
    PATIENT = "patient"
    RESOURCES = "resources"
    HYDRATE = "hydrate"
    PACKAGE = "package"
    DONE = "done"


class ExportFailureReason(StrEnum):
    """`failure_reason` of `patient.ehi_export_failed` (compat): the published list, no other."""

    TOKEN_REFRESH_FAILURE = "token_refresh_failure"  # noqa: S105 (a reason, not a secret)
    SCOPE_PATIENT_MISSING = "scope_patient_missing"
    RESOURCE_PATIENT_FAILURE = "resource_patient_failure"
    RESOURCE_INVALID_CONTENT = "resource_invalid_content"
    TIMEOUT = "timeout"
    SUPPRESSED_PLEASE_CONTACT = "suppressed_please_contact"

    @classmethod
    def public(cls, reason: str | None) -> ExportFailureReason:
        """A reason outside the published list is reported as `suppressed_please_contact`."""
        for member in cls:
            if member == reason:
                return member
        return cls.SUPPRESSED_PLEASE_CONTACT
