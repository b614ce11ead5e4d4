"""docs/webhooks.md's field tables are the payload models: every documented field exists with
the documented type, every model field is documented, in the order it is sent, and a field with
a fixed set of values lists them all."""

from __future__ import annotations

import datetime as dt
import enum
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import AwareDatetime, BaseModel

from ehiconnect.vocabulary import EventType
from ehiconnect.webhooks.payloads import PAYLOADS, EventPayload, WebhookTest

DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"
HEADING = re.compile(r"^#### `(?P<type>[a-z_.]+)`\s*$")
ROW = re.compile(r"^\| `(?P<field>[^`]+)` \| (?P<type>[^|]+) \| (?P<meaning>.*) \|\s*$")


class Documented(dict[str, tuple[str, str]]):
    """field -> (type, meaning), in the table's order."""


def documented_events() -> dict[str, Documented]:
    """Each `#### \\`type\\`` section of the doc and the rows of its field table."""
    sections: dict[str, Documented] = {}
    current: Documented | None = None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            heading = HEADING.match(line)
            current = sections.setdefault(heading["type"], Documented()) if heading else None
        elif current is not None and (row := ROW.match(line)):
            current[row["field"]] = (row["type"].strip(), row["meaning"])
    return sections


def doc_type(annotation: Any) -> str:
    """How the doc names the JSON type a model field is sent as."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return doc_type(args[0])
    if origin in (Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        assert len(others) == 1, annotation
        return f"{doc_type(others[0])} or null"
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, str)):
        return "string"
    if origin is list:
        return f"array of {_plural(doc_type(args[0]))}"
    if origin is dict:
        return f"object of {_plural(doc_type(args[1]))}"
    if annotation is int:
        return "integer"
    if annotation is AwareDatetime or annotation is dt.datetime:
        return "timestamp"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    raise AssertionError(f"no documented name for {annotation!r}; add one here and in the doc")


def _plural(name: str) -> str:
    return name.replace("integer", "integers").replace("object", "objects")


def fixed_values(annotation: Any) -> list[str]:
    """The values a field may only take (a Literal or a StrEnum), or none."""
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return []


def model_fields(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[str, list[str]]]:
    """field -> (documented type, fixed values), nested models' fields as `a.b` and `a[].b`."""
    found: dict[str, tuple[str, list[str]]] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        found[prefix + name] = (doc_type(annotation), fixed_values(annotation))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= model_fields(annotation, f"{prefix}{name}.")
        elif get_origin(annotation) is list and issubclass(get_args(annotation)[0], BaseModel):
            found |= model_fields(get_args(annotation)[0], f"{prefix}{name}[].")
    return found


TYPED = [model for model in PAYLOADS if model is not WebhookTest]


def test_every_event_type_has_a_model_and_a_section() -> None:
    assert {model.event_type for model in PAYLOADS} == set(EventType)
    assert set(documented_events()) == {str(t) for t in EventType}


@pytest.mark.parametrize("model", TYPED, ids=lambda m: str(m.event_type))
def test_every_documented_field_is_in_the_model(model: type[EventPayload]) -> None:
    documented = documented_events()[model.event_type]
    missing = [field for field in documented if field not in model_fields(model)]
    assert missing == [], f"docs/webhooks.md lists fields {model.__name__} does not have"


@pytest.mark.parametrize("model", TYPED, ids=lambda m: str(m.event_type))
def test_every_model_field_is_documented_with_its_type_in_order(
    model: type[EventPayload],
) -> None:
    documented = documented_events()[model.event_type]
    fields = model_fields(model)
    undocumented = [field for field in fields if field not in documented]
    assert undocumented == [], f"add these fields of {model.__name__} to docs/webhooks.md"
    assert {f: documented[f][0] for f in fields} == {f: t for f, (t, _) in fields.items()}
    assert list(documented) == list(fields), "the table's order is the order fields are sent"


@pytest.mark.parametrize("model", TYPED, ids=lambda m: str(m.event_type))
def test_fields_of_fixed_values_list_every_value(model: type[EventPayload]) -> None:
    documented = documented_events()[model.event_type]
    for field, (_, values) in model_fields(model).items():
        meaning = documented[field][1]
        assert [v for v in values if f"`{v}`" not in meaning] == [], field


def test_webhook_test_is_free_form_and_documented_without_a_table() -> None:
    assert WebhookTest.model_fields == {}
    assert WebhookTest.model_config.get("extra") == "allow"
    assert documented_events()[EventType.WEBHOOK_TEST] == {}
