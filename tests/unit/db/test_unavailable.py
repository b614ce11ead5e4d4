"""Which failures mean "the database is away" (503, retry) rather than a bug (500)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from ehiconnect.db.unavailable import is_database_away


def _wrapped(inner: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("the job queue could not defer") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection refused"),
        sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("too many clients")),
        sa_exc.TimeoutError("QueuePool limit reached"),
        _wrapped(psycopg.OperationalError("terminating connection")),
    ],
)
def test_connection_failures_are_the_database_being_away(error: BaseException) -> None:
    assert is_database_away(error)


def test_a_bug_raised_while_handling_a_database_error_is_still_a_bug() -> None:
    def handler_with_a_bug() -> None:
        try:
            raise psycopg.OperationalError("gone")
        except psycopg.OperationalError:
            raise KeyError("a bug in the handler")  # noqa: B904 - the context, not a cause

    with pytest.raises(KeyError) as bug:
        handler_with_a_bug()
    assert bug.value.__context__ is not None
    assert not is_database_away(bug.value)


def test_data_errors_are_not_outages() -> None:
    assert not is_database_away(psycopg.DataError("NUL"))
    assert not is_database_away(ValueError("bad"))
