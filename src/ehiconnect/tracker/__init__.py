"""The tracker: the customer's side of consent and collection (DESIGN §5; docs/tracker.md).

A product of its own beside the platform: it talks to the platform only over the public HTTP API
(`client.PlatformClient`) and uses only the shared leaves (database, storage, signing, FHIR, the
job queue, readiness, metrics). It has its own settings (`TrackerSettings.load()`,
`EHICONNECT_TRACKER__…`), its own tables and migration history (`upgrade_tracker_database`,
version table `tracker_alembic_version`), and its own job queue and worker (`TrackerRuntime.jobs`,
queue `QUEUE`). The names below are its public surface; the modules behind them are private.

Modules, outside in:

- `receiver.build_tracker_app`: POST /stitch-events, POST /webhooks, GET /fhir/{type}, /healthz,
  /readyz, and the console under /console (`console`)
- `tasks.make_blueprint`: the jobs (confirm, export, process_webhook, download, ingest, notify,
  and the periodic watchdog and purge), thin wrappers over the step modules
- steps: `export_steps` (confirm, request, webhook outcome, watchdog), `download_step`,
  `ingest_step`, `lift_step`, `notify_step`
- pure rules: `ledger` (states, transitions, retry decisions, webhook trust),
  `intake.check_webhook`, `consent_log.parse_widget_event`, `notify.render`,
  `sinks.references`, `report.group_failures`
- ports and adapters: `client.PlatformClient` (the platform API), `sinks` (FHIR store, FHIR
  server, Parquet), the shared `BlobStore` for downloaded files
- `settings.TrackerSettings` (policies as data), `runtime.TrackerRuntime` (opened by
  `process.open_tracker`), `models` (its tables, on `TrackerBase`), `migrate` and `migrations/`
  (its history)

The names are loaded when first asked for (PEP 562): importing `ehiconnect.tracker.settings`, as
the `ehiconnect` command line does for every command, must not load the tracker's console, sinks
and pyarrow (~80 MiB of resident memory) into the platform's worker, which never uses them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ehiconnect.tracker.client import PlatformClient
    from ehiconnect.tracker.console import REALM as CONSOLE_REALM
    from ehiconnect.tracker.export_steps import request_export
    from ehiconnect.tracker.ledger import JobState, Step
    from ehiconnect.tracker.metrics import exposed as metrics_exposed
    from ehiconnect.tracker.migrate import TRACKER_MIGRATIONS, upgrade_tracker_database
    from ehiconnect.tracker.models import (
        TrackerBase,
        TrackerConsent,
        TrackerFhirResource,
        TrackerIngestProgress,
        TrackerJob,
        TrackerJobEvent,
    )
    from ehiconnect.tracker.process import open_tracker
    from ehiconnect.tracker.receiver import build_tracker_app
    from ehiconnect.tracker.report import failures as failures_report
    from ehiconnect.tracker.report import status as status_report
    from ehiconnect.tracker.runtime import QUEUE, TrackerRuntime
    from ehiconnect.tracker.settings import (
        FhirServerSinkSettings,
        NotifySettings,
        RetryPolicy,
        TrackerSettings,
    )

__all__ = [
    "CONSOLE_REALM",
    "QUEUE",
    "TRACKER_MIGRATIONS",
    "FhirServerSinkSettings",
    "JobState",
    "NotifySettings",
    "PlatformClient",
    "RetryPolicy",
    "Step",
    "TrackerBase",
    "TrackerConsent",
    "TrackerFhirResource",
    "TrackerIngestProgress",
    "TrackerJob",
    "TrackerJobEvent",
    "TrackerRuntime",
    "TrackerSettings",
    "build_tracker_app",
    "failures_report",
    "metrics_exposed",
    "open_tracker",
    "request_export",
    "status_report",
    "upgrade_tracker_database",
]

# Each public name: the module defining it, and its name there when it differs.
_LAZY: dict[str, tuple[str, str]] = {
    "PlatformClient": ("client", "PlatformClient"),
    "CONSOLE_REALM": ("console", "REALM"),
    "request_export": ("export_steps", "request_export"),
    "JobState": ("ledger", "JobState"),
    "Step": ("ledger", "Step"),
    "metrics_exposed": ("metrics", "exposed"),
    "TRACKER_MIGRATIONS": ("migrate", "TRACKER_MIGRATIONS"),
    "upgrade_tracker_database": ("migrate", "upgrade_tracker_database"),
    "TrackerBase": ("models", "TrackerBase"),
    "TrackerConsent": ("models", "TrackerConsent"),
    "TrackerFhirResource": ("models", "TrackerFhirResource"),
    "TrackerIngestProgress": ("models", "TrackerIngestProgress"),
    "TrackerJob": ("models", "TrackerJob"),
    "TrackerJobEvent": ("models", "TrackerJobEvent"),
    "open_tracker": ("process", "open_tracker"),
    "build_tracker_app": ("receiver", "build_tracker_app"),
    "failures_report": ("report", "failures"),
    "status_report": ("report", "status"),
    "QUEUE": ("runtime", "QUEUE"),
    "TrackerRuntime": ("runtime", "TrackerRuntime"),
    "FhirServerSinkSettings": ("settings", "FhirServerSinkSettings"),
    "NotifySettings": ("settings", "NotifySettings"),
    "RetryPolicy": ("settings", "RetryPolicy"),
    "TrackerSettings": ("settings", "TrackerSettings"),
}


def __getattr__(name: str) -> object:
    """A public name, imported from its module on first use (then kept here)."""
    try:
        module, attribute = _LAZY[name]
    except (
        KeyError
    ):  # (a submodule not imported yet: `from ehiconnect.tracker import x` imports it)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value
