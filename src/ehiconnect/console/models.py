"""The console's tables (from the kit) and the indexes its pages need on other features' tables.

The pages read ranges of time per organization and mode; these indexes keep them index scans
with 10,000s of exports and 100,000s of webhook attempts (migration 0013_console). They are
declared here, beside the queries that need them, so the schema check sees them.
"""

from __future__ import annotations

from sqlalchemy import Index

from ehiconnect.connections.models import ConsentRecord
from ehiconnect.consent.models import ConsentFlow
from ehiconnect.consolekit.models import ConsoleSession, ConsoleUser
from ehiconnect.db.models import AuditLog
from ehiconnect.exports.models import ExportTask
from ehiconnect.webhooks.models import WebhookAttempt, WebhookDelivery

CONSOLE_INDEXES = (
    Index(
        "ix_export_tasks_org_mode_created",
        ExportTask.org_id,
        ExportTask.api_mode,
        ExportTask.created_at,
    ),
    Index("ix_export_tasks_mode_created", ExportTask.api_mode, ExportTask.created_at),
    Index(
        "ix_webhook_attempts_endpoint_attempted",
        WebhookAttempt.endpoint_id,
        WebhookAttempt.attempted_at,
    ),
    Index(
        "ix_webhook_deliveries_endpoint_created",
        WebhookDelivery.endpoint_id,
        WebhookDelivery.created_at,
    ),
    Index("ix_audit_log_action_occurred", AuditLog.action, AuditLog.occurred_at),
    Index(
        "ix_consent_flows_org_mode_created",
        ConsentFlow.org_id,
        ConsentFlow.api_mode,
        ConsentFlow.created_at,
    ),
    Index("ix_consent_records_event_recorded", ConsentRecord.event, ConsentRecord.recorded_at),
)

__all__ = ["CONSOLE_INDEXES", "ConsoleSession", "ConsoleUser"]
