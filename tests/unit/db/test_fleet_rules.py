"""When a starting process's shared settings are accepted, recorded or refused (pure rules)."""

from __future__ import annotations

from ehiconnect.fleet import judge_equal, judge_vault_keys


def test_the_first_process_records_its_key_checks() -> None:
    verdict = judge_vault_keys(None, {"k1": "a"}, in_use=set(), others_running=False, source="x")
    assert verdict.record == {"checks": {"k1": "a"}}
    assert verdict.problem is None


def test_an_added_key_extends_the_record_while_others_run() -> None:
    verdict = judge_vault_keys(
        {"k1": "a"}, {"k1": "a", "k2": "b"}, in_use={"k1"}, others_running=True, source="vault.keys"
    )
    assert verdict.problem is None
    assert verdict.record == {"checks": {"k1": "a", "k2": "b"}}


def test_the_same_keys_change_nothing() -> None:
    verdict = judge_vault_keys(
        {"k1": "a"}, {"k1": "a"}, in_use=set(), others_running=True, source="vault.keys"
    )
    assert verdict == type(verdict)()


def test_another_key_under_a_recorded_id_is_refused() -> None:
    verdict = judge_vault_keys(
        {"k1": "a"}, {"k1": "z"}, in_use=set(), others_running=False, source="vault.keys"
    )
    assert verdict.problem is not None
    assert "'k1'" in verdict.problem


def test_a_missing_key_is_refused_while_used_or_held_by_running_processes() -> None:
    for in_use, running in (({"k1"}, False), (set(), True)):
        verdict = judge_vault_keys(
            {"k1": "a", "k2": "b"}, {"k2": "b"}, in_use=in_use, others_running=running, source="f"
        )
        assert verdict.problem is not None
        assert "lacks key 'k1'" in verdict.problem
        assert "made because no vault.keys is configured" in verdict.problem


def test_an_unused_key_of_a_stopped_fleet_is_retired() -> None:
    verdict = judge_vault_keys(
        {"k1": "a", "k2": "b"}, {"k2": "b"}, in_use=set(), others_running=False, source="f"
    )
    assert verdict.problem is None
    assert verdict.record == {"checks": {"k2": "b"}}
    assert verdict.note is not None
    assert "retired" in verdict.note


def test_an_equal_setting_is_refused_only_while_others_run_with_the_old_value() -> None:
    recorded, mine = {"url": "https://a"}, {"url": "https://b"}
    running = judge_equal("api.public_base_url", recorded, mine, others_running=True, fix="Fix.")
    assert running.problem is not None
    assert running.problem.startswith("api.public_base_url differs")
    assert running.problem.endswith("Fix.")
    alone = judge_equal("api.public_base_url", recorded, mine, others_running=False, fix="Fix.")
    assert (alone.problem, alone.record) == (None, mine)
