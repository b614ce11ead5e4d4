from __future__ import annotations

import pytest

from ehiconnect.tracker.ledger import (
    GiveUp,
    IllegalTransition,
    JobState,
    RetryLater,
    after_export_failure,
    after_transient_failure,
    plan_transition,
    webhook_flag,
)
from ehiconnect.tracker.settings import RetryPolicy

S = JobState


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.CONSENTED, S.EXPORT_REQUESTED),
        (S.EXPORT_REQUESTED, S.EXPORT_READY),
        (S.EXPORT_REQUESTED, S.CONSENTED),  # a retried export
        (S.EXPORT_READY, S.DOWNLOADING),
        (S.DOWNLOADING, S.DOWNLOADED),
        (S.DOWNLOADING, S.CONSENTED),  # the export's files were gone: export again
        (S.DOWNLOADED, S.INGESTING),
        (S.INGESTING, S.INGESTED),
        (S.INGESTING, S.FAILED),
    ],
)
def test_forward_moves_are_allowed(current: JobState, target: JobState) -> None:
    assert plan_transition(current, target) == target


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.INGESTED, S.EXPORT_READY), (S.DOWNLOADED, S.DOWNLOADING), (S.EXPORT_READY, S.EXPORT_READY)],
)
def test_a_late_duplicate_message_is_a_no_op(current: JobState, target: JobState) -> None:
    assert plan_transition(current, target) is None


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.CONSENTED, S.DOWNLOADING), (S.FAILED, S.INGESTED), (S.EXPORT_READY, S.INGESTED)],
)
def test_skipping_steps_or_reviving_a_failed_job_is_refused(
    current: JobState, target: JobState
) -> None:
    with pytest.raises(IllegalTransition, match="cannot move"):
        plan_transition(current, target)


def test_transient_failures_follow_the_schedule_then_give_up() -> None:
    policy = RetryPolicy(backoff_seconds=[5.0, 30.0])
    assert after_transient_failure(1, policy) == RetryLater(delay_seconds=5.0, attempt=2)
    assert after_transient_failure(2, policy) == RetryLater(delay_seconds=30.0, attempt=3)
    assert after_transient_failure(3, policy) == GiveUp(reason="attempts_exhausted")


def test_export_failures_are_retried_only_for_retryable_reasons() -> None:
    policy = RetryPolicy(backoff_seconds=[10.0, 60.0], max_export_requests=3)
    assert after_export_failure("scope_patient_missing", 1, policy) == GiveUp(
        reason="scope_patient_missing"
    )
    assert after_export_failure("suppressed_please_contact", 1, policy) == GiveUp(
        reason="suppressed_please_contact"
    )
    assert after_export_failure("timeout", 1, policy) == RetryLater(delay_seconds=10.0, attempt=2)
    assert after_export_failure("timeout", 2, policy) == RetryLater(delay_seconds=60.0, attempt=3)
    assert after_export_failure("timeout", 3, policy) == GiveUp(reason="timeout")


def test_retryable_reasons_are_data() -> None:
    policy = RetryPolicy(retryable_export_reasons=["scope_patient_missing"])
    assert isinstance(after_export_failure("scope_patient_missing", 1, policy), RetryLater)
    assert isinstance(after_export_failure("timeout", 1, policy), GiveUp)


def test_webhook_flags() -> None:
    data = {"task_id": "a" * 32, "org_connection_id": "c1"}
    assert webhook_flag(data, "a" * 32, "c1") is None
    assert webhook_flag(data, None, None) == "unknown_task"
    assert webhook_flag(data, "a" * 32, "c2") == "connection_mismatch"
    assert webhook_flag({"org_connection_id": "c1"}, None, None) == "missing_task_id"
