"""NUL characters in received JSON, which PostgreSQL cannot store.

JSON may carry `\\u0000` in any string or key, but PostgreSQL's `text` and `jsonb` cannot hold
U+0000 (psycopg refuses the value). What the tracker receives is either refused, naming where
the NUL is (`nul_path`: for a caller that can fix its input), or kept with each NUL replaced by
U+FFFD, the Unicode replacement character (`replace_nul_escapes`: for authentic input the sender
will not change, a signed webhook). Replacing, not deleting, keeps the mark visible and never
turns one identifier into another (`"a\\u0000b"` does not become the different id `"ab"`).

Both walk without recursion: JSON nested a thousand levels deep is valid input here.
"""

from __future__ import annotations

import re
from typing import Any

NUL = "\x00"
REPLACEMENT = "\ufffd"
# A `\u0000` escape: a backslash that is not itself escaped (an odd run of backslashes) + u0000.
# JSON allows no raw control character in a string, so this is the only way a NUL gets in.
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def replace_nul_escapes(body: bytes) -> tuple[bytes, int]:
    """The JSON text with every `\\u0000` escape turned into `\\ufffd`; how many there were."""
    if b"\\u0000" not in body:
        return body, 0
    return _NUL_ESCAPE.subn(rb"\1\\ufffd", body)


def nul_path(value: Any) -> str | None:
    """Where the first NUL is, e.g. `data[0].external_id` (`$` for the top level); else None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return path or "$"
        elif isinstance(item, dict):
            children: list[tuple[str, Any]] = []
            for key, child in item.items():
                here = f"{path}.{key}" if path else str(key)
                if NUL in str(key):
                    return here.replace(NUL, REPLACEMENT)
                children.append((here, child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(
                (f"{path or '$'}[{i}]", child) for i, child in reversed(list(enumerate(item)))
            )
    return None
