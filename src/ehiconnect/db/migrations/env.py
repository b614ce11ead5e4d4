"""Alembic environment: runs on the connection handed over by `ehiconnect.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ehiconnect.db.all_models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `ehiconnect db migrate`, which supplies a connection"
    )

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
