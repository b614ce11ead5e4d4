"""Database URL forms: the plain libpq URL, and SQLAlchemy's `postgresql+psycopg://` form."""

from __future__ import annotations

from pathlib import Path

from ehiconnect.db.embedded import ensure_embedded_postgres


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The configured URL, or the embedded server's (started on demand)."""
    if database_url:
        return to_libpq_url(database_url)
    return ensure_embedded_postgres(data_dir)


def to_libpq_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    if not url.startswith("postgresql://"):
        raise ValueError(
            "EHICONNECT_DATABASE_URL must be a postgresql:// URL, "
            f"got one starting with {url.split(':', 1)[0]!r}"
        )
    return url


def to_sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + to_libpq_url(url)[len("postgresql://") :]
