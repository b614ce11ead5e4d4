"""Synthetic SMART on FHIR health systems: what test mode, demos and tests connect to.

A product beside the platform: it imports only shared leaves and the catalog's import path, and
the platform imports none of it (the catalog lists it by name, `catalog.builtin_sources`). Its
public surface is `__all__` below; the modules behind it are the sandbox's own business.

- `build_sandbox_app(config=None)`: the ASGI app; `app.state.sandbox` is its `SandboxState`
  (faults switched at run time).
- `SandboxConfig` / `DEFAULT_SYSTEMS` / `DEFAULT_CLIENTS`: the systems and OAuth clients as data.
- `list_personas(system)` / `persona_info`: who can sign in, and their patient ids.
- `expected_resources`, `expected_attachments`, `attachment_sha256`, `iter_attachment_bytes`:
  exactly what was generated, to compare an export with.
- `sandbox_catalog(base_url)` / `sandbox_catalog_data(base_url)`: the systems as catalog entries.
- `PatientBrowser`: signs a persona in and consents, as a patient's browser would.
"""

from ehiconnect.sandbox.app import build_sandbox_app
from ehiconnect.sandbox.catalog import sandbox_catalog, stable_catalog_id
from ehiconnect.sandbox.catalog_sync import sandbox_catalog_data
from ehiconnect.sandbox.client_keys import SANDBOX_CLIENT_PRIVATE_JWKS
from ehiconnect.sandbox.config import (
    Client,
    Faults,
    HealthSystem,
    Persona,
    Quirks,
    SandboxConfig,
    TokenLifetimes,
)
from ehiconnect.sandbox.generator import (
    attachment_sha256,
    expected_attachments,
    expected_resources,
    generate_record,
    iter_attachment_bytes,
    resolve_persona,
)
from ehiconnect.sandbox.patient_browser import PatientBrowser, PortalError
from ehiconnect.sandbox.personas import PersonaInfo, list_personas, persona_info
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.sandbox.systems import (
    ASYMMETRIC_CLIENT_ID,
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    DEFAULT_CLIENTS,
    DEFAULT_SYSTEMS,
    PUBLIC_CLIENT_ID,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500

__all__ = [
    "ASYMMETRIC_CLIENT_ID",
    "CONFIDENTIAL_CLIENT_ID",
    "CONFIDENTIAL_CLIENT_SECRET",
    "DEFAULT_CLIENTS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_SYSTEMS",
    "PUBLIC_CLIENT_ID",
    "SANDBOX_CLIENT_PRIVATE_JWKS",
    "Client",
    "Faults",
    "HealthSystem",
    "PatientBrowser",
    "Persona",
    "PersonaInfo",
    "PortalError",
    "Quirks",
    "SandboxConfig",
    "SandboxState",
    "TokenLifetimes",
    "attachment_sha256",
    "build_sandbox_app",
    "expected_attachments",
    "expected_resources",
    "generate_record",
    "iter_attachment_bytes",
    "list_personas",
    "persona_info",
    "resolve_persona",
    "sandbox_catalog",
    "sandbox_catalog_data",
    "stable_catalog_id",
]
