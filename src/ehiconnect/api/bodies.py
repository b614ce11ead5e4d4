"""The base of every JSON request body the platform API reads, and its string types.

JSON may carry any character in a string, including NUL (`\\u0000`), but PostgreSQL text cannot
hold NUL: such a value would fail deep inside a query. `RequestBody` refuses NUL in every string
of the body (nested lists and objects too) as a validation error naming the field, before a
route runs. Fields holding one line of text (ids, names, URLs, search terms) are `Line`, which also
refuses the other C0 control characters and DEL; free text (a message) may keep line breaks and
tabs.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, field_validator


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple | set | frozenset):
        return any(_contains_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    return False  # numbers, booleans, None; a nested RequestBody checks itself


def _single_line(value: str) -> str:
    for position, char in enumerate(value):
        if char < " " or char == "\x7f":
            raise ValueError(
                f"must be one line of text without control characters; found U+{ord(char):04X} "
                f"at position {position}"
            )
    return value


Line = Annotated[str, AfterValidator(_single_line)]
"""One line of text: no C0 control character (NUL, tab, line breaks …) and no DEL."""


class RequestBody(BaseModel):
    """Base of the API's JSON request models: no string anywhere in the body may hold NUL."""

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if _contains_nul(value):
            raise ValueError("must not contain the NUL character (\\u0000); remove it")
        return value
