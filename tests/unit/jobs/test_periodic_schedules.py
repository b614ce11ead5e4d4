"""Periodic jobs are deferred as often as their settings promise, read the way procrastinate does.

procrastinate hands a periodic task's cron to croniter, whose optional 6th field is SECONDS, the
last one. Written first (`*/5 * * * * *`), the stalled-job check ran every second of every fifth
minute and then not at all for four minutes: a killed worker's export waited up to 4 minutes,
and the reconciler (`*/15 ...`) was silent for 14 minutes out of 15 (found by bench/fleet.py
--chaos: exports stuck `doing` with no recovery pass in sight).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ehiconnect.settings import Settings
from ehiconnect.task_registry import build_job_app

HOUR_START = 1_800_000_000.0  # a whole hour (divisible by 3600)


def _ticks_in_an_hour(periodic_id: str, tmp_path: Path) -> list[float]:
    app = build_job_app("postgresql://nobody@127.0.0.1:1/none", Settings(data_dir=tmp_path))
    [periodic] = [
        task
        for (_, pid), task in app.periodic_registry.periodic_tasks.items()
        if pid == periodic_id
    ]
    iterator = periodic.croniter  # the very iterator procrastinate's deferrer uses
    iterator.set_current(start_time=HOUR_START)
    ticks: list[float] = []
    while (tick := iterator.get_next(ret_type=float)) <= HOUR_START + 3600:
        ticks.append(tick)
    return ticks


@pytest.mark.parametrize(
    ("periodic_id", "every_s"), [("recover_stalled", 5), ("reconcile_exports", 15)]
)
def test_sub_minute_checks_run_evenly_all_hour_long(
    periodic_id: str, every_s: int, tmp_path: Path
) -> None:
    ticks = _ticks_in_an_hour(periodic_id, tmp_path)
    gaps = {round(later - earlier) for earlier, later in itertools.pairwise(ticks)}
    assert gaps == {every_s}, f"{periodic_id}: gaps between runs {sorted(gaps)[:5]}...{max(gaps)}"
    assert len(ticks) == 3600 // every_s
