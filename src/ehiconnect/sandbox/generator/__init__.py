"""Deterministic synthetic US Core R4 patients, and exactly what was made for each persona.

Public API (stable; used by export tests and the platform):

- `generate_record(system, persona) -> PatientRecord`: the whole record, cached per process.
- `expected_resources(system_slug, persona_id) -> Iterator[tuple[str, str]]`: every
  `(resourceType, id)` a complete crawl must return: the patient-compartment resources plus the
  Practitioner/PractitionerRole/Organization/Location/Medication they reference. Attachments are
  not in it; they are served as `Binary` and listed by `expected_attachments`.
- `expected_attachments(system_slug, persona_id) -> Iterator[AttachmentSpec]`: each attachment's
  `binary_id`, `content_type` and exact `size`.
- `iter_attachment_bytes(spec)` streams an attachment's bytes in pieces of at most 1 MiB;
  `attachment_sha256(spec)` hashes them by streaming. Nothing is held whole or written to disk.
"""

from __future__ import annotations

from collections.abc import Iterator

from ehiconnect.sandbox.config import HealthSystem, Persona, SandboxConfig
from ehiconnect.sandbox.generator.attachments import (
    AttachmentSpec,
    attachment_sha256,
    iter_attachment_bytes,
)
from ehiconnect.sandbox.generator.record import (
    NON_COMPARTMENT_TYPES,
    PatientRecord,
    generate_record,
)

__all__ = [
    "NON_COMPARTMENT_TYPES",
    "AttachmentSpec",
    "PatientRecord",
    "attachment_sha256",
    "expected_attachments",
    "expected_resources",
    "generate_record",
    "iter_attachment_bytes",
    "resolve_persona",
]


def resolve_persona(
    system_slug: str, persona_id: str, config: SandboxConfig | None = None
) -> tuple[HealthSystem, Persona]:
    """The system and persona named, or `KeyError` saying which name is unknown."""
    config = config or SandboxConfig()
    system = config.system(system_slug)
    if system is None:
        known = ", ".join(s.slug for s in config.systems)
        raise KeyError(f"no sandbox health system {system_slug!r}; known: {known}")
    persona = system.persona(persona_id)
    if persona is None:
        known = ", ".join(p.persona_id for p in system.personas)
        raise KeyError(f"no persona {persona_id!r} at {system_slug!r}; known: {known}")
    return system, persona


def expected_resources(
    system_slug: str, persona_id: str, config: SandboxConfig | None = None
) -> Iterator[tuple[str, str]]:
    """Every `(resourceType, id)` of the persona's record, in generation order."""
    system, persona = resolve_persona(system_slug, persona_id, config)
    yield from generate_record(system, persona).keys()


def expected_attachments(
    system_slug: str, persona_id: str, config: SandboxConfig | None = None
) -> Iterator[AttachmentSpec]:
    """Every attachment of the persona's record (served as `Binary/{binary_id}`)."""
    system, persona = resolve_persona(system_slug, persona_id, config)
    yield from generate_record(system, persona).attachments.values()
