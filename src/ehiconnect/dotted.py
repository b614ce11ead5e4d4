"""Functions named in settings as `"package.module:function"`: how a product registers a part of
itself (built-in catalogs, extra job tasks) without the platform importing it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class DottedNameError(ValueError):
    """A setting names nothing usable; the message says which entry, of which setting, and why."""


def load_function(target: str, *, setting: str) -> Callable[..., Any]:
    """The function `target` names; `setting` is named in the error when it names nothing."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise DottedNameError(f"{setting} entry {target!r} should read 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        raise DottedNameError(
            f"{setting} names {target}, but {missing.name} cannot be imported; "
            "install it or remove the entry"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise DottedNameError(f"{setting} names {target}, which is not a function of {module_name}")
    return function  # type: ignore[no-any-return]
