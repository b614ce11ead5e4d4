"""Build the procrastinate app with every feature's tasks registered.

Each feature keeps its tasks in its own `tasks.py` with a `make_blueprint() -> Blueprint` factory
that wraps its task functions in a fresh `procrastinate.Blueprint`. A factory rather than a
module-level blueprint because procrastinate binds a blueprint's tasks to the one app that adopts
it, and a process may hold several apps (one per Runtime: tests open one per database).

Factories are listed in `BLUEPRINTS` as `(namespace, "module:function")`, so task names read
`"<namespace>:<name>"` (e.g. "maintenance:recover_stalled"). Modules named in the
`jobs.extra_task_modules` setting (each exposing `make_blueprint`) are loaded too, under their last
dotted name: that is how tests and plug-ins add tasks without touching this file.
"""

from __future__ import annotations

from collections.abc import Callable

import procrastinate

from ehiconnect.db.pools import ProcessRole, job_pool_options
from ehiconnect.dotted import load_function
from ehiconnect.settings import Settings

BLUEPRINTS: tuple[tuple[str, str], ...] = (
    ("maintenance", "ehiconnect.queue.maintenance:make_blueprint"),
    ("webhooks", "ehiconnect.webhooks.tasks:make_blueprint"),
    ("exports", "ehiconnect.exports.tasks:make_blueprint"),
    ("connections", "ehiconnect.connections.tasks:make_blueprint"),
    ("consent", "ehiconnect.consent.tasks:make_blueprint"),
)


def build_job_app(
    url: str, settings: Settings, role: ProcessRole = ProcessRole.CLI
) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=url, **job_pool_options(role, settings.db, settings.jobs.concurrency)
    )
    app = procrastinate.App(connector=connector)
    factories = list(BLUEPRINTS) + [
        (module.rsplit(".", 1)[-1], f"{module}:make_blueprint")
        for module in settings.jobs.extra_task_modules
    ]
    for namespace, target in factories:
        app.add_tasks_from(_load(target)(), namespace=namespace)
    app.periodic(cron=settings.jobs.stalled_check_cron, periodic_id="recover_stalled")(
        app.tasks["maintenance:recover_stalled"]
    )
    app.periodic(cron=settings.jobs.old_jobs_cleanup_cron, periodic_id="remove_old_jobs")(
        app.tasks["maintenance:remove_old_jobs"]
    )
    app.periodic(cron=settings.exports.retention_check_cron, periodic_id="purge_expired")(
        app.tasks["exports:purge_expired"]
    )
    app.periodic(cron=settings.exports.reconcile_cron, periodic_id="reconcile_exports")(
        app.tasks["exports:reconcile"]
    )
    app.periodic(cron=settings.consent.refresh_check_cron, periodic_id="refresh_expiring")(
        app.tasks["connections:refresh_expiring"]
    )
    app.periodic(cron=settings.consent.flow_purge_cron, periodic_id="purge_flows")(
        app.tasks["consent:purge_flows"]
    )
    return app


def _load(target: str) -> Callable[[], procrastinate.Blueprint]:
    factory: Callable[[], procrastinate.Blueprint] = load_function(
        target, setting="jobs.extra_task_modules"
    )
    return factory
