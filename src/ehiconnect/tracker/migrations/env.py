"""Alembic environment of the tracker's history: runs on the connection handed over by
`ehiconnect.tracker.migrate`, recording its revision in `tracker_alembic_version`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ehiconnect.tracker.migrate import VERSION_TABLE
from ehiconnect.tracker.models import TrackerBase

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the tracker's migrations through `ehiconnect tracker serve` (or "
        "ehiconnect.tracker.migrate.upgrade_tracker_database), which supplies a connection"
    )


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Only the tracker's tables: the platform's (same database, by default) are its own."""
    table = getattr(obj, "table", obj)
    return (getattr(table, "name", name) or "").startswith("tracker_")


context.configure(
    connection=connection,
    target_metadata=TrackerBase.metadata,
    version_table=VERSION_TABLE,
    compare_type=True,
    include_object=_ours,
)
with context.begin_transaction():
    context.run_migrations()
