"""The platform's worker process neither loads the tracker nor hashes a password at start.

`ehiconnect worker` goes through the command line, which registers every command group: the
tracker's console, sinks and pyarrow would add ~80 MiB to every worker's memory for code it never
runs, and the console's dummy argon2 hash 64 MiB for a moment (its peak RSS). The tracker's public
names still resolve, each from its module, when asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ehiconnect.tracker

NEVER_IN_THE_WORKER = (
    "pyarrow",
    "ehiconnect.tracker.console",
    "ehiconnect.tracker.process",
    "ehiconnect.tracker.receiver",
    "ehiconnect.tracker.sinks",
)


def test_the_command_line_and_worker_leave_the_tracker_out() -> None:
    probe = (
        "import sys, ehiconnect.cli.main, ehiconnect.jobs.worker, ehiconnect.task_registry\n"
        f"print(','.join(m for m in {NEVER_IN_THE_WORKER!r} if m in sys.modules))\n"
        "from ehiconnect.consolekit import passwords\n"
        "print(passwords._dummy_hash.cache_info().currsize)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    # No tracker module, and no argon2 hash made at import (64 MiB for a moment in every process)
    assert done.stdout.split("\n")[:2] == ["", "0"]


def test_every_public_name_of_the_tracker_resolves() -> None:
    for name in ehiconnect.tracker.__all__:
        value = getattr(ehiconnect.tracker, name)
        assert value is not None, name
    from ehiconnect.tracker.report import failures
    from ehiconnect.tracker.runtime import TrackerRuntime

    assert ehiconnect.tracker.TrackerRuntime is TrackerRuntime
    assert ehiconnect.tracker.failures_report is failures


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        ehiconnect.tracker.no_such_name  # noqa: B018
    from ehiconnect.tracker import ledger_store

    assert ledger_store.__name__ == "ehiconnect.tracker.ledger_store"


def test_a_console_app_makes_the_unknown_email_hash_when_it_is_built() -> None:
    """The hash the worker no longer makes at import is made when a console app is built, so a
    console's first sign-in with an unknown email costs no more than any other."""
    probe = (
        "from ehiconnect.api.app import create_app\n"
        "from ehiconnect.settings import Settings\n"
        "from ehiconnect.consolekit import passwords\n"
        "before = passwords._dummy_hash.cache_info().currsize\n"
        "create_app(Settings())\n"
        "print(before, passwords._dummy_hash.cache_info().currsize)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["0", "1"]
