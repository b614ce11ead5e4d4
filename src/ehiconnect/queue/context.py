"""How a task reaches the ports it needs: the worker puts them in the job context.

The entry point that runs a worker (`jobs/worker.py`) builds each feature's ports once and puts
them in procrastinate's `additional_context` with `provide`; a task takes its own with
`ports_of(context, ExportPorts)`. A feature's tasks thus never see the process's whole runtime.
"""

from __future__ import annotations

from typing import Any, TypeVar

import procrastinate

T = TypeVar("T")


def key_of(kind: type[Any]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def provide(*ports: object) -> dict[str, Any]:
    """Job-context entries for `ports`, each under its type (merge them into the context)."""
    return {key_of(type(port)): port for port in ports}


def ports_of(context: procrastinate.JobContext, kind: type[T]) -> T:
    """The `kind` object the worker provided, or an error saying how to run the task."""
    found = context.additional_context.get(key_of(kind))
    if not isinstance(found, kind):
        raise RuntimeError(
            f"this task needs {kind.__qualname__} in its job context: run it with "
            "`ehiconnect worker`, not a bare procrastinate worker"
        )
    return found
