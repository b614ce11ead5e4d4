"""Deterministic seeds and identifiers of generated records: the same inputs give the same ids
on every machine (a persona's patient id is known without generating its record)."""

from __future__ import annotations

import hashlib
import uuid


def persona_seed(system_slug: str, system_seed: int, persona_id: str) -> int:
    """The seed of one persona's record, stable across processes (unlike `hash()`)."""
    digest = hashlib.sha256(f"{system_slug}:{system_seed}:{persona_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def stable_id(seed: int, kind: str, n: int) -> str:
    """A UUID-shaped id for the `n`-th `kind` of the record with `seed`."""
    digest = hashlib.sha256(f"{seed}:{kind}:{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def patient_id_for(seed: int) -> str:
    return stable_id(seed, "Patient", 0)
