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
"""

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
