"""The export's pure decisions: what a run crawls (or why it cannot), which task a new request
gets back, and the failure reasons customers see."""

from __future__ import annotations

import datetime as dt

import pytest

from ehiconnect.catalog.models import CatalogEndpoint
from ehiconnect.db.models import OrgConnection
from ehiconnect.errors import FatalError
from ehiconnect.exports.models import ExportTask
from ehiconnect.exports.runner import CrawlTarget, crawl_target
from ehiconnect.exports.states import reusable, status_view
from ehiconnect.vocabulary import ConnectionStatus, ExportFailureReason, ExportStatus

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def connection(**changes: object) -> OrgConnection:
    fields: dict[str, object] = {
        "org_connection_id": "c0ffee00-0000-4000-8000-000000000001",
        "api_mode": "live",
        "catalog_endpoint_id": "e1",
        "platform_type": "epic",
        "status": ConnectionStatus.AUTHORIZED,
        "scope": "patient/*.read",
        "fhir_base_url": "https://ehr.example.org/fhir",
        "source_patient_id": "p1",
    }
    return OrgConnection(**{**fields, **changes})


def endpoint(*, allow_private_network: bool = False) -> CatalogEndpoint:
    return CatalogEndpoint(
        id="e1", platform_type="epic", allow_private_network=allow_private_network
    )


def test_a_run_crawls_the_connections_patient_at_its_fhir_base() -> None:
    assert crawl_target(connection(), endpoint()) == CrawlTarget(
        org_connection_id="c0ffee00-0000-4000-8000-000000000001",
        fhir_base="https://ehr.example.org/fhir",
        patient_id="p1",
        granted_scope="patient/*.read",
        platform_type="epic",
        allow_private=False,
    )


@pytest.mark.parametrize(
    ("mode", "allowed", "private"),
    [("live", False, False), ("live", True, True), ("test", False, True)],
)
def test_private_addresses_only_in_test_mode_or_where_the_operator_allowed(
    mode: str, allowed: bool, private: bool
) -> None:
    target = crawl_target(connection(api_mode=mode), endpoint(allow_private_network=allowed))
    assert isinstance(target, CrawlTarget)
    assert target.allow_private is private


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        ((connection(status=ConnectionStatus.REVOKED), endpoint()), "token_refresh_failure"),
        ((None, None), "token_refresh_failure"),
        ((connection(), None), "token_refresh_failure"),
        ((connection(source_patient_id=None), endpoint()), "scope_patient_missing"),
        ((connection(fhir_base_url=None), endpoint()), "scope_patient_missing"),
    ],
)
def test_a_connection_that_cannot_be_crawled_is_a_failure_with_its_reason(
    found: tuple[OrgConnection | None, CatalogEndpoint | None], reason: str
) -> None:
    failure = crawl_target(*found)
    assert isinstance(failure, FatalError)
    assert failure.failure_reason == reason


def task(status: ExportStatus, expires_at: dt.datetime | None = None) -> ExportTask:
    return ExportTask(
        task_id="t" * 32,
        org_connection_id="c1",
        status=status,
        phase="done",
        progress={},
        created_at=NOW,
        expires_at=expires_at,
        stats={"total_resources": 3},
        file_id="f.jsonl",
        file_size=10,
        sha256="0" * 64,
        failure_reason="timeout",
        failure_description="too slow",
    )


@pytest.mark.parametrize(
    ("status", "expires_at", "expected"),
    [
        (ExportStatus.PENDING, None, True),
        (ExportStatus.SUCCESS, NOW + dt.timedelta(seconds=1), True),
        (ExportStatus.SUCCESS, NOW, False),
        (ExportStatus.FAILED, None, False),
        (ExportStatus.CANCELLED, None, False),
        (ExportStatus.EXPIRED, None, False),
    ],
)
def test_a_new_request_gets_back_a_pending_or_still_retained_task(
    status: ExportStatus, expires_at: dt.datetime | None, expected: bool
) -> None:
    assert reusable(task(status, expires_at), NOW) is expected


def test_the_status_view_shows_the_failure_only_when_failed_and_files_only_on_success() -> None:
    failed = status_view(task(ExportStatus.FAILED))
    assert (failed["failure_reason"], failed["failure_description"]) == ("timeout", "too slow")
    assert "files" not in failed
    done = status_view(task(ExportStatus.SUCCESS, NOW))
    assert done["files"] == [{"file_id": "f.jsonl", "size": 10, "sha256": "0" * 64}]
    assert "failure_reason" not in done


@pytest.mark.parametrize("reason", [None, "", "database_down", "TIMEOUT"])
def test_reasons_outside_the_published_list_are_reported_as_suppressed(
    reason: str | None,
) -> None:
    assert ExportFailureReason.public(reason) == "suppressed_please_contact"


def test_published_reasons_are_reported_as_they_are() -> None:
    assert ExportFailureReason.public("timeout") is ExportFailureReason.TIMEOUT
