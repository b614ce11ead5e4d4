"""Build a persona's whole record from its seed, and index it for serving."""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from ehiconnect.sandbox.config import HealthSystem, Persona
from ehiconnect.sandbox.generator.attachments import AttachmentKind, AttachmentSpec
from ehiconnect.sandbox.generator.context import RECORD_END, RecordContext, Resource
from ehiconnect.sandbox.generator.encounters import build_encounter
from ehiconnect.sandbox.generator.foundation import build_foundation
from ehiconnect.sandbox.generator.profiles import PROFILES
from ehiconnect.sandbox.seeds import patient_id_for, persona_seed

#: Types outside the patient compartment: shared directory data, reached by reference.
NON_COMPARTMENT_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Location", "Medication"}
)


@dataclass
class PatientRecord:
    """One persona's resources in generation order, plus lookups used by the FHIR API."""

    system_slug: str
    persona_id: str
    patient_id: str
    resources: list[Resource]
    attachments: dict[str, AttachmentSpec]
    by_key: dict[tuple[str, str], Resource] = field(init=False)
    by_type: dict[str, list[Resource]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_key = {(r["resourceType"], r["id"]): r for r in self.resources}
        self.by_type = {}
        for resource in self.resources:
            self.by_type.setdefault(resource["resourceType"], []).append(resource)

    def get(self, resource_type: str, resource_id: str) -> Resource | None:
        return self.by_key.get((resource_type, resource_id))

    def of_type(self, resource_type: str) -> list[Resource]:
        return self.by_type.get(resource_type, [])

    def keys(self) -> Iterator[tuple[str, str]]:
        for resource in self.resources:
            yield resource["resourceType"], resource["id"]


def generate_record(system: HealthSystem, persona: Persona) -> PatientRecord:
    """The record of `persona` at `system`; the same inputs always give the same record.

    Records are cached per process (the huge one takes about a second to build); treat the
    returned resources as read-only.
    """
    return _cached_record(system.slug, system.seed, system.name, persona)


@functools.lru_cache(maxsize=16)
def _cached_record(
    slug: str, system_seed: int, system_name: str, persona: Persona
) -> PatientRecord:
    seed = persona_seed(slug, system_seed, persona.persona_id)
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    ctx = RecordContext(seed=seed, rng=rng)
    profile = PROFILES[persona.size_class]
    start = RECORD_END - dt.timedelta(days=365 * profile.years)
    found = build_foundation(ctx, persona, system_name, start)

    span = int((RECORD_END - start).total_seconds())
    visits = sorted(
        start + dt.timedelta(seconds=rng.randrange(0, span)) for _ in range(profile.encounters)
    )
    visits = [v.replace(minute=(v.minute // 15) * 15, second=0) for v in visits]
    extra: list[list[tuple[AttachmentKind, int]]] = [[] for _ in visits]
    for _ in range(profile.pdf_count):
        extra[rng.randrange(len(visits))].append(("pdf", rng.randint(*profile.pdf_bytes)))
    for _ in range(profile.image_count):
        extra[rng.randrange(len(visits))].append(("png", rng.choice((96, 128, 192))))
    for size in profile.dicom_bytes:
        extra[rng.randrange(len(visits))].append(("dicom", size))
    for when, documents in zip(visits, extra, strict=True):
        note_bytes = rng.randint(*profile.note_bytes)
        build_encounter(ctx, found, when, note_bytes, documents)

    return PatientRecord(
        system_slug=slug,
        persona_id=persona.persona_id,
        patient_id=patient_id_for(seed),
        resources=ctx.resources,
        attachments={spec.binary_id: spec for spec in ctx.attachments},
    )
