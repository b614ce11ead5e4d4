"""The worker's malloc settings give way to the operator's own."""

from __future__ import annotations

import pytest

from ehiconnect.jobs import worker


class Libc:
    def __init__(self) -> None:
        self.set: dict[int, int] = {}

    def mallopt(self, parameter: int, value: int) -> int:
        self.set[parameter] = value
        return 1


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> Libc:
    fake = Libc()
    monkeypatch.setattr("ctypes.CDLL", lambda name: fake)
    for variable, *_ in worker.MALLOC_SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    return fake


def test_every_setting_is_made_when_the_operator_set_none(libc: Libc) -> None:
    worker.tune_malloc()
    assert libc.set == {parameter: value for _, _, parameter, value in worker.MALLOC_SETTINGS}


def test_a_setting_the_operator_made_is_left_to_them(
    libc: Libc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576")
    worker.tune_malloc()
    assert set(libc.set) == {-3}  # only the mmap threshold is left for the worker to set


def test_without_glibc_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise OSError(name)

    monkeypatch.setattr("ctypes.CDLL", missing)
    worker.tune_malloc()  # no error: malloc is left at its defaults
