"""Test patients of each sandbox health system, and how to look them up.

Listing personas is cheap: a persona's patient id is derived from its seed, without generating
its record (the huge persona's record is only built when its data is first asked for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ehiconnect.sandbox.model import HealthSystem, Persona, SizeClass
from ehiconnect.sandbox.seeds import patient_id_for, persona_seed

_DESCRIPTIONS: dict[SizeClass, str] = {
    "tiny": "a short record for quick tests",
    "small": "about 500 resources and 30 MB of attachments",
    "huge": "about 5,000 resources plus a 3 GB imaging attachment, streamed",
}


def _published(
    given_name: str, family_name: str, gender: Literal["female", "male"], size_class: SizeClass
) -> Persona:
    """A persona of the shipped systems: signs in as its first name in lower case, with the
    published password `<name>-sandbox` (docs/sandbox.md)."""
    login = given_name.lower()
    return Persona(
        persona_id=login,
        username=login,
        password=f"{login}-sandbox",
        given_name=given_name,
        family_name=family_name,
        gender=gender,
        size_class=size_class,
        description=_DESCRIPTIONS[size_class],
    )


HARBOR_PERSONAS: tuple[Persona, ...] = (
    _published("Amy", "Harbor-Shaw", "female", "small"),
    _published("Hugo", "Harbor-Lindqvist", "male", "huge"),
    _published("Tina", "Harbor-Okafor", "female", "tiny"),
)
CEDAR_PERSONAS: tuple[Persona, ...] = (
    _published("Beth", "Cedar-Morales", "female", "small"),
    _published("Theo", "Cedar-Nakamura", "male", "tiny"),
)
SUMMIT_PERSONAS: tuple[Persona, ...] = (
    _published("Carl", "Summit-Jensen", "male", "small"),
    _published("Tess", "Summit-Adeyemi", "female", "tiny"),
)


@dataclass(frozen=True)
class PersonaInfo:
    """What a tester needs to sign in as a persona and find their data."""

    system_slug: str
    persona_id: str
    username: str
    password: str
    patient_id: str
    size_class: SizeClass
    display_name: str
    description: str


def persona_info(system: HealthSystem, persona: Persona) -> PersonaInfo:
    seed = persona_seed(system.slug, system.seed, persona.persona_id)
    return PersonaInfo(
        system_slug=system.slug,
        persona_id=persona.persona_id,
        username=persona.username,
        password=persona.password,
        patient_id=patient_id_for(seed),
        size_class=persona.size_class,
        display_name=f"{persona.given_name} {persona.family_name}",
        description=persona.description,
    )


def list_personas(system: HealthSystem) -> list[PersonaInfo]:
    """Every persona of `system`, with patient ids, without generating any record."""
    return [persona_info(system, p) for p in system.personas]
