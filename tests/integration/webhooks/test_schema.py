"""Migration 0002_webhooks creates exactly the tables the webhook models describe."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from ehiconnect.db.models import Base
from ehiconnect.db.urls import to_sqlalchemy_url
from ehiconnect.webhooks import models as webhook_models

pytestmark = pytest.mark.integration

TABLES = {
    "webhook_endpoints",
    "webhook_endpoint_secrets",
    "webhook_events",
    "webhook_deliveries",
    "webhook_attempts",
}


def _table_of(diff: Any) -> str | None:
    if isinstance(diff, list):  # column modifications come grouped
        return _table_of(diff[0])
    for part in diff[1:]:
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if isinstance(part, str) and part in TABLES:
            return part
        if name in TABLES:
            return str(name)
    return None


def test_migration_matches_the_models(database_url: str) -> None:
    assert webhook_models.WebhookEndpoint.__tablename__ in Base.metadata.tables
    engine = create_engine(to_sqlalchemy_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if _table_of(d) in TABLES]
    assert ours == []
