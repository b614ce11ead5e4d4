"""The vocabulary's members are the published strings (DESIGN §1 and §2, Fasten's names)."""

from __future__ import annotations

from ehiconnect.vocabulary import ConnectionStatus, EventType, ExportFailureReason, ExportStatus


def test_members_are_their_published_strings() -> None:
    assert {str(e) for e in EventType} == {
        "patient.connection_success",
        "patient.authorization_revoked",
        "patient.ehi_export_success",
        "patient.ehi_export_failed",
        "patient.request_health_system",
        "webhook.test",
    }
    assert {str(s) for s in ConnectionStatus} == {"authorized", "revoked", "refreshing"}
    assert {"pending", "success", "failed"} <= {str(s) for s in ExportStatus}
    assert {str(r) for r in ExportFailureReason} == {
        "token_refresh_failure",
        "scope_patient_missing",
        "resource_patient_failure",
        "resource_invalid_content",
        "timeout",
        "suppressed_please_contact",
    }


def test_an_unpublished_failure_reason_is_reported_as_suppressed_please_contact() -> None:
    assert ExportFailureReason.public("timeout") is ExportFailureReason.TIMEOUT
    assert ExportFailureReason.public("database_exploded") is (
        ExportFailureReason.SUPPRESSED_PLEASE_CONTACT
    )
    assert ExportFailureReason.public(None) is ExportFailureReason.SUPPRESSED_PLEASE_CONTACT
