"""Test patients of each sandbox health system, and how to look them up.

Listing personas is cheap: a persona's patient id is derived from its seed, without generating
its record (the huge persona's record is only built when its data is first asked for).
"""

from __future__ import annotations

from dataclasses import dataclass

from ehiconnect.sandbox.config import HealthSystem, Persona, SandboxConfig, SizeClass
from ehiconnect.sandbox.generator.ids import patient_id_for, persona_seed

HARBOR_PERSONAS: tuple[Persona, ...] = (
    Persona(
        persona_id="amy",
        username="amy",
        password="amy-sandbox",  # noqa: S106 - published test persona
        given_name="Amy",
        family_name="Harbor-Shaw",
        gender="female",
        size_class="small",
        description="about 500 resources and 30 MB of attachments",
    ),
    Persona(
        persona_id="hugo",
        username="hugo",
        password="hugo-sandbox",  # noqa: S106
        given_name="Hugo",
        family_name="Harbor-Lindqvist",
        gender="male",
        size_class="huge",
        description="about 5,000 resources plus a 3 GB imaging attachment, streamed",
    ),
    Persona(
        persona_id="tina",
        username="tina",
        password="tina-sandbox",  # noqa: S106
        given_name="Tina",
        family_name="Harbor-Okafor",
        gender="female",
        size_class="tiny",
        description="a short record for quick tests",
    ),
)

CEDAR_PERSONAS: tuple[Persona, ...] = (
    Persona(
        persona_id="beth",
        username="beth",
        password="beth-sandbox",  # noqa: S106
        given_name="Beth",
        family_name="Cedar-Morales",
        gender="female",
        size_class="small",
        description="about 500 resources and 30 MB of attachments",
    ),
    Persona(
        persona_id="theo",
        username="theo",
        password="theo-sandbox",  # noqa: S106
        given_name="Theo",
        family_name="Cedar-Nakamura",
        gender="male",
        size_class="tiny",
        description="a short record for quick tests",
    ),
)

SUMMIT_PERSONAS: tuple[Persona, ...] = (
    Persona(
        persona_id="carl",
        username="carl",
        password="carl-sandbox",  # noqa: S106
        given_name="Carl",
        family_name="Summit-Jensen",
        gender="male",
        size_class="small",
        description="about 500 resources and 30 MB of attachments",
    ),
    Persona(
        persona_id="tess",
        username="tess",
        password="tess-sandbox",  # noqa: S106
        given_name="Tess",
        family_name="Summit-Adeyemi",
        gender="female",
        size_class="tiny",
        description="a short record for quick tests",
    ),
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


def personas_by_system(config: SandboxConfig | None = None) -> dict[str, list[PersonaInfo]]:
    """Every system's personas, keyed by system slug (default: the shipped systems)."""
    config = config or SandboxConfig()
    return {system.slug: list_personas(system) for system in config.systems}
