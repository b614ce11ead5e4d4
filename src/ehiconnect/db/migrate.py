"""Apply the schema migrations, safely from several processes at once.

Every process that opens the database (`serve`, `worker`, tests) calls `upgrade_database` first.
A PostgreSQL advisory lock makes concurrent callers wait for the first one, then find nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from ehiconnect.db.urls import to_sqlalchemy_url

_MIGRATIONS = Path(__file__).parent.parent / "migrations"
_LOCK_KEY = 0x6568_6963  # "ehic"
MIGRATIONS_APPLICATION_NAME = "ehiconnect-migrations"  # one short-lived connection per start


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> frozenset[str]:
    """Every revision id this code's migration scripts name."""
    return frozenset(
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    )


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(url: str, target: str = "head") -> str | None:
    """Migrate the database at `url` to `target`; returns the revision it ends at."""
    engine = create_engine(
        to_sqlalchemy_url(url),
        hide_parameters=True,
        connect_args={"application_name": MIGRATIONS_APPLICATION_NAME},
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                connection.commit()
                if current_revision(connection) != head_revision() or target != "head":
                    config = alembic_config()
                    config.attributes["connection"] = connection
                    command.upgrade(config, target)
                    connection.commit()
                return current_revision(connection)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                connection.commit()
    finally:
        engine.dispose()
