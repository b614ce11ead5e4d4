"""How a task reaches the process's Runtime: the worker passes it in the job context."""

from __future__ import annotations

from typing import TYPE_CHECKING

import procrastinate

if TYPE_CHECKING:
    from ehiconnect.runtime import Runtime

RUNTIME_KEY = "runtime"


def runtime_of(context: procrastinate.JobContext) -> Runtime:
    runtime = context.additional_context.get(RUNTIME_KEY)
    if runtime is None:
        raise RuntimeError(
            "this task needs the ehiconnect runtime: run it with `ehiconnect worker`, "
            "not a bare procrastinate worker"
        )
    return runtime  # type: ignore[no-any-return]
