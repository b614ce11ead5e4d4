"""Typed configuration of the sandbox: `SandboxConfig` is its whole world (health systems with
their quirks, personas and faults, OAuth clients); `SandboxConfig()` gives the shipped systems.

The sandbox never reads the platform's settings or database. The values a configuration is made
of are defined in `model.py` and re-exported here, where configurations are written.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ehiconnect.sandbox.model import (
    AttachmentUrlStyle,
    Client,
    ClientKind,
    Faults,
    HealthSystem,
    Persona,
    Quirks,
    SizeClass,
    TokenLifetimes,
)
from ehiconnect.sandbox.systems import DEFAULT_CLIENTS, DEFAULT_SYSTEMS

__all__ = [
    "AttachmentUrlStyle",
    "Client",
    "ClientKind",
    "Faults",
    "HealthSystem",
    "Persona",
    "Quirks",
    "SandboxConfig",
    "SizeClass",
    "TokenLifetimes",
]


class SandboxConfig(BaseModel):
    """The sandbox's whole configuration. `SandboxConfig()` gives the three shipped systems."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    systems: tuple[HealthSystem, ...] = DEFAULT_SYSTEMS
    clients: tuple[Client, ...] = DEFAULT_CLIENTS
    public_base_url: str | None = None
    """Base URL clients use (e.g. behind a proxy); default: taken from each request."""
    fault_seed: int = 0
    """Seeds the draws that decide which requests a fractional fault hits."""

    def system(self, slug: str) -> HealthSystem | None:
        return next((s for s in self.systems if s.slug == slug), None)

    def client(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.client_id == client_id), None)
