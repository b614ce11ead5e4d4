"""A module named in `jobs.extra_task_modules` that gives no tasks is refused at start, naming the
setting and the entry (as `catalog.builtin_sources` entries are: ehiconnect.dotted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehiconnect.dotted import DottedNameError
from ehiconnect.settings import JobSettings, Settings
from ehiconnect.task_registry import build_job_app

URL = "postgresql://nobody@127.0.0.1:1/none"


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("ehiconnect.no_such_tasks", "ehiconnect.no_such_tasks cannot be imported"),
        ("ehiconnect.clock", "not a function of ehiconnect.clock"),
    ],
)
def test_an_unusable_task_module_names_the_setting(
    tmp_path: Path, module: str, message: str
) -> None:
    settings = Settings(data_dir=tmp_path, jobs=JobSettings(extra_task_modules=[module]))
    with pytest.raises(DottedNameError, match=message) as refused:
        build_job_app(URL, settings)
    assert "jobs.extra_task_modules" in str(refused.value)


def test_a_module_with_make_blueprint_adds_its_tasks(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, jobs=JobSettings(extra_task_modules=["tests.support.job_tasks"])
    )
    assert "job_tasks:note_org" in build_job_app(URL, settings).tasks
