"""Alembic environment: runs on the connection handed over by `ehiconnect.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ehiconnect.schema import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `ehiconnect db migrate`, which supplies a connection"
    )


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave the task queue's own tables to procrastinate's schema scripts, and the tracker's
    (`tracker_*`, kept by its own history, `tracker_alembic_version`) to the tracker: a database
    both products share must never get a platform migration that drops them."""
    table = getattr(obj, "table", obj)
    table_name = getattr(table, "name", name) or ""
    return not table_name.startswith(("procrastinate_", "tracker_"))


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    include_object=_ours,
)
with context.begin_transaction():
    context.run_migrations()
