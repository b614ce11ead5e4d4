"""The tracker's own migration history, apart from the platform's.

    upgrade_tracker_database(url)   # every tracker process does this on start, under the lock
                                    # the platform's migrations take too

Its revisions live in `ehiconnect/tracker/migrations/versions` and its revision in the table
`tracker_alembic_version`, so the tracker migrates a database of its own (a customer's, with no
platform in it) or the platform's, beside the platform's history and without touching it.
"""

from __future__ import annotations

from pathlib import Path

from ehiconnect.db.migrate import MigrationChain

VERSION_TABLE = "tracker_alembic_version"
TRACKER_MIGRATIONS = MigrationChain(
    Path(__file__).resolve().parent / "migrations", version_table=VERSION_TABLE
)


def upgrade_tracker_database(url: str, target: str = "head") -> str | None:
    """Bring the tracker's tables at `url` to `target`; returns the revision it ends at."""
    return TRACKER_MIGRATIONS.upgrade(url, target)
