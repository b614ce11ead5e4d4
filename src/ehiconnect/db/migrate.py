"""Apply the schema migrations, safely from several processes at once.

Every process that opens the database (`serve`, `worker`, tests) calls `upgrade_database` first.
A PostgreSQL advisory lock makes concurrent callers wait for the first one, then find nothing to do.

A database may hold more than one migration history: the platform's (`PLATFORM`, version table
`alembic_version`) and the tracker's (its own `MigrationChain`, version table
`tracker_alembic_version`), so each product migrates its own tables without knowing the other's.
Every history takes the same lock: one schema change at a time on a database, so two histories
that both create a shared table when it is missing (the task queue's) never race.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class MigrationChain:
    """One Alembic history: where its scripts are and which table records its revision.

    Its `env.py` must configure the same `version_table` (Alembic reads it from there when it
    upgrades; `current` reads it from here).
    """

    scripts: Path
    version_table: str = "alembic_version"

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.scripts))
        return config

    def head(self) -> str | None:
        return ScriptDirectory.from_config(self.config()).get_current_head()

    def known(self) -> frozenset[str]:
        """Every revision id this code's migration scripts name."""
        scripts = ScriptDirectory.from_config(self.config())
        return frozenset(script.revision for script in scripts.walk_revisions())

    def current(self, connection: Connection) -> str | None:
        context = MigrationContext.configure(connection, opts={"version_table": self.version_table})
        return context.get_current_revision()

    def upgrade(self, url: str, target: str = "head") -> str | None:
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
                    if self.current(connection) != self.head() or target != "head":
                        config = self.config()
                        config.attributes["connection"] = connection
                        command.upgrade(config, target)
                        connection.commit()
                    return self.current(connection)
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                    connection.commit()
        finally:
            engine.dispose()


PLATFORM = MigrationChain(_MIGRATIONS)


def head_revision() -> str | None:
    return PLATFORM.head()


def known_revisions() -> frozenset[str]:
    """Every revision id the platform's migration scripts name."""
    return PLATFORM.known()


def upgrade_database(url: str, target: str = "head") -> str | None:
    """Migrate the platform's schema at `url` to `target`; returns the revision it ends at."""
    return PLATFORM.upgrade(url, target)
