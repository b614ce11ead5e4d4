from __future__ import annotations

from ehiconnect.tracker.report import FailedJob, by_reason, group_failures


def _failed(job_id: str, reason: str, system: str, step: str) -> FailedJob:
    return FailedJob(job_id, "c", system, step, reason, f"{reason} details", "2026-11-29T00:00:00")


def test_failures_grouped_largest_first_with_examples() -> None:
    jobs = [
        _failed("j1", "timeout", "harbor", "export"),
        _failed("j2", "scope_patient_missing", "summit", "export"),
        _failed("j3", "timeout", "harbor", "export"),
        _failed("j4", "timeout", "harbor", "download"),
    ]
    groups = group_failures(jobs)
    assert [(g.reason, g.health_system, g.step, g.count) for g in groups] == [
        ("timeout", "harbor", "export", 2),
        ("scope_patient_missing", "summit", "export", 1),
        ("timeout", "harbor", "download", 1),
    ]
    assert groups[0].job_ids == ["j1", "j3"]
    assert by_reason(groups) == {"timeout": 3, "scope_patient_missing": 1}


def test_examples_are_capped() -> None:
    groups = group_failures([_failed(f"j{n}", "timeout", "h", "export") for n in range(9)])
    assert groups[0].count == 9
    assert len(groups[0].job_ids) == 5
