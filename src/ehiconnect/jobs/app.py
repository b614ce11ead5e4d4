"""Build the procrastinate app with every feature's tasks registered.

Each feature keeps its tasks in a `procrastinate.Blueprint` in its own `tasks.py`; they are listed
in `BLUEPRINTS` as `(namespace, "module:attribute")`. Extra modules named in the
`jobs.extra_task_modules` setting (each exposing `blueprint`) are loaded too, which is how tests and
plug-ins add tasks without touching this file.
"""

from __future__ import annotations

import importlib

import procrastinate

from ehiconnect.settings import Settings

BLUEPRINTS: tuple[tuple[str, str], ...] = (
    ("maintenance", "ehiconnect.jobs.maintenance:blueprint"),
)


def build_job_app(url: str, settings: Settings) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    for namespace, target in BLUEPRINTS:
        app.add_tasks_from(_load(target), namespace=namespace)
    for module in settings.jobs.extra_task_modules:
        app.add_tasks_from(_load(f"{module}:blueprint"), namespace=module.rsplit(".", 1)[-1])
    app.periodic(cron=settings.jobs.stalled_check_cron, periodic_id="recover_stalled")(
        app.tasks["maintenance:recover_stalled"]
    )
    return app


def _load(target: str) -> procrastinate.Blueprint:
    module_name, _, attribute = target.partition(":")
    blueprint = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(blueprint, procrastinate.Blueprint):
        raise TypeError(f"{target} is not a procrastinate.Blueprint")
    return blueprint
