"""Fleet tests run the platform and the sandbox (fixtures shared with the consent tests)."""

from __future__ import annotations

from tests.integration.consent.conftest import (  # noqa: F401 (fixtures)
    api,
    browser,
    org,
    platform,
    platform_clock,
    sandbox,
    sandbox_app,
    sandbox_state,
    settings,
)
