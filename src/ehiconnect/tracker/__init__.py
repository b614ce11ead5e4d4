"""The tracker: the customer's side of consent and collection (DESIGN §5; docs/tracker.md).

Modules, outside in:

- `receiver.build_tracker_app`: POST /stitch-events, POST /webhooks, GET /fhir/{type}, /healthz
- `tasks.make_blueprint`: the jobs (confirm, export, process_webhook, download, ingest, notify,
  and the periodic watchdog and purge), thin wrappers over the step modules
- steps: `export_steps` (confirm, request, webhook outcome, watchdog), `download_step`,
  `ingest_step`, `notify_step`
- pure rules: `ledger` (states, transitions, retry decisions, webhook trust),
  `intake.check_webhook`, `consent_log.parse_widget_event`, `notify.render`,
  `sinks.references`, `report.group_failures`
- ports and adapters: `client.PlatformClient` (the platform API), `sinks` (FHIR store, FHIR
  server, Parquet), the shared `BlobStore` for downloaded files
- `settings.TrackerSettings` (policies as data), `runtime.TrackerRuntime`, `models` (tables)
"""
