"""Synthetic SMART on FHIR health systems: what test mode, demos and tests connect to.

Entry points:
- `ehiconnect.sandbox.app.build_sandbox_app(config=None)`: the ASGI app.
- `ehiconnect.sandbox.catalog.sandbox_catalog(base_url)`: catalog entries for test mode.
- `ehiconnect.sandbox.generator`: `expected_resources`, `expected_attachments`, streaming bytes.
- `ehiconnect.sandbox.personas.list_personas(system)`: who can sign in, and their patient ids.
- `ehiconnect.sandbox.config.SandboxConfig` / `systems.DEFAULT_SYSTEMS`: the systems as data.
"""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500
