"""The shipped health systems and OAuth clients, as data.

Three systems with different behaviour:

- `harbor` (Harbor Health, full-featured): `$everything`, absolute attachment URLs, big pages.
- `cedar` (Cedar Valley Clinics, Epic-like): no `$everything`, Observation searches need
  `category`, attachments as relative `Binary/x`, no `meta.lastUpdated`.
- `summit` (Summit Regional, Cerner-like): 60-second access tokens, absolute attachment URLs,
  pages of at most 10 entries.
"""

from __future__ import annotations

from ehiconnect.sandbox.client_keys import SANDBOX_CLIENT_PUBLIC_JWKS
from ehiconnect.sandbox.model import Client, HealthSystem, Quirks, TokenLifetimes
from ehiconnect.sandbox.personas import CEDAR_PERSONAS, HARBOR_PERSONAS, SUMMIT_PERSONAS

PUBLIC_CLIENT_ID = "ehiconnect-public"
CONFIDENTIAL_CLIENT_ID = "ehiconnect-confidential"
CONFIDENTIAL_CLIENT_SECRET = "sandbox-secret-not-for-production"  # noqa: S105 - published test value
ASYMMETRIC_CLIENT_ID = "ehiconnect-asymmetric"

HARBOR = HealthSystem(
    slug="harbor",
    name="Harbor Health (Sandbox)",
    aliases=("Harbor Health System", "HHS Sandbox"),
    website="https://harbor-health.example.org",
    city="Portland",
    state="OR",
    postal_code="97201",
    platform_type="smart",
    behaviour="full-featured: $everything, absolute attachment URLs, 50-entry pages",
    quirks=Quirks(supports_everything=True, attachment_urls="absolute", default_page_size=50),
    personas=HARBOR_PERSONAS,
    seed=1,
)

CEDAR = HealthSystem(
    slug="cedar",
    name="Cedar Valley Clinics (Sandbox)",
    aliases=("Cedar Valley", "CVC MyChart Sandbox"),
    website="https://cedar-valley.example.org",
    city="Madison",
    state="WI",
    postal_code="53703",
    platform_type="epic",
    behaviour="Epic-like: no $everything, Observation needs category, relative Binary URLs",
    quirks=Quirks(
        supports_everything=False,
        observation_category_required=True,
        attachment_urls="relative",
        include_last_updated=False,
        default_page_size=100,
        max_page_size=1000,
    ),
    personas=CEDAR_PERSONAS,
    seed=2,
)

SUMMIT = HealthSystem(
    slug="summit",
    name="Summit Regional Medical Center (Sandbox)",
    aliases=("Summit Regional", "SRMC Sandbox"),
    website="https://summit-regional.example.org",
    city="Kansas City",
    state="MO",
    postal_code="64106",
    platform_type="cerner",
    behaviour="Cerner-like: 60 s access tokens, absolute attachment URLs, pages of 10",
    quirks=Quirks(
        supports_everything=False,
        attachment_urls="absolute",
        default_page_size=10,
        max_page_size=10,
    ),
    lifetimes=TokenLifetimes(access_token_s=60),
    personas=SUMMIT_PERSONAS,
    seed=3,
)

DEFAULT_SYSTEMS: tuple[HealthSystem, ...] = (HARBOR, CEDAR, SUMMIT)

DEFAULT_CLIENTS: tuple[Client, ...] = (
    Client(client_id=PUBLIC_CLIENT_ID, kind="public"),
    Client(
        client_id=CONFIDENTIAL_CLIENT_ID,
        kind="confidential-symmetric",
        secret=CONFIDENTIAL_CLIENT_SECRET,
    ),
    Client(
        client_id=ASYMMETRIC_CLIENT_ID,
        kind="confidential-asymmetric",
        jwks=SANDBOX_CLIENT_PUBLIC_JWKS,
    ),
)
