"""The sandbox's health systems as catalog entries (brand → portal → endpoint) for test mode."""

from __future__ import annotations

import uuid
from typing import Any

from ehiconnect.sandbox.config import HealthSystem, SandboxConfig

_NAMESPACE = uuid.UUID("7b0f3c1e-5a52-4a8e-9d44-3f0c2b9a6e10")


def stable_catalog_id(system: HealthSystem, kind: str) -> str:
    """A UUID that stays the same for a system across runs, hosts and ports."""
    return str(uuid.uuid5(_NAMESPACE, f"sandbox:{system.slug}:{kind}"))


def sandbox_catalog(base_url: str, config: SandboxConfig | None = None) -> list[dict[str, Any]]:
    """One `{"brand", "portal", "endpoint"}` dict per sandbox health system.

    `base_url` is where the sandbox is served, e.g. `http://127.0.0.1:8500`. Ids are stable
    UUIDs (same for every `base_url`). Shape:

    - brand: `id, name, aliases, brand_website, logo, locations[{city, state, postalCode}]`
    - portal: `id, name`
    - endpoint: `id, url` (the FHIR base, which is also the OAuth `aud`), `platform_type`
      (`smart`, `epic`, `cerner`), `fhir_version` ("4.0.1"), `authorization_endpoint`,
      `token_endpoint`, `revocation_endpoint`, `introspection_endpoint`,
      `smart_configuration_url`, `sandbox` (True)
    """
    config = config or SandboxConfig()
    base = base_url.rstrip("/")
    entries = []
    for system in config.systems:
        fhir = f"{base}/{system.slug}/fhir"
        auth = f"{base}/{system.slug}/auth"
        entries.append(
            {
                "brand": {
                    "id": stable_catalog_id(system, "brand"),
                    "name": system.name,
                    "aliases": list(system.aliases),
                    "brand_website": system.website,
                    "logo": f"{base}/{system.slug}/logo.svg",
                    "locations": [
                        {
                            "city": system.city,
                            "state": system.state,
                            "postalCode": system.postal_code,
                        }
                    ],
                },
                "portal": {
                    "id": stable_catalog_id(system, "portal"),
                    "name": f"{system.name} Patient Portal",
                },
                "endpoint": {
                    "id": stable_catalog_id(system, "endpoint"),
                    "url": fhir,
                    "platform_type": system.platform_type,
                    "fhir_version": "4.0.1",
                    "authorization_endpoint": f"{auth}/authorize",
                    "token_endpoint": f"{auth}/token",
                    "revocation_endpoint": f"{auth}/revoke",
                    "introspection_endpoint": f"{auth}/introspect",
                    "smart_configuration_url": f"{fhir}/.well-known/smart-configuration",
                    "sandbox": True,
                },
            }
        )
    return entries
