"""The values that describe a sandbox health system: its personas, quirks, token lifetimes, faults
and the OAuth clients registered at it.

Everything that makes one synthetic health system behave differently from another is a value
here, so a new system is a new `HealthSystem(...)` and not new code. `SandboxConfig`
(`config.py`) gathers them into the sandbox's whole world.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SizeClass = Literal["tiny", "small", "medium", "huge"]
ClientKind = Literal["public", "confidential-symmetric", "confidential-asymmetric"]
AttachmentUrlStyle = Literal["relative", "absolute"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Persona(_Frozen):
    """A test patient who can sign in at one health system's portal."""

    persona_id: str
    username: str
    password: str
    given_name: str
    family_name: str
    gender: Literal["female", "male"]
    size_class: SizeClass
    description: str = ""


class Quirks(_Frozen):
    """How a health system's FHIR API differs from the plain specification."""

    supports_everything: bool = True
    """`Patient/{id}/$everything` is advertised and served."""
    observation_category_required: bool = False
    """`Observation?patient=` without `category=` is refused with 400 (Epic does this)."""
    attachment_urls: AttachmentUrlStyle = "absolute"
    """`relative` gives `Binary/x`, `absolute` gives `{fhir_base}/Binary/x`."""
    include_last_updated: bool = True
    """Whether resources carry `meta.lastUpdated`."""
    default_page_size: int = 50
    max_page_size: int = 200


class TokenLifetimes(_Frozen):
    """Lifetimes in seconds of what the authorization server hands out."""

    access_token_s: int = 3600
    refresh_token_s: int | None = None
    """`None`: refresh tokens live until used (rotation) or revoked."""
    authorization_code_s: int = 60
    pending_login_s: int = 1800
    """How long a login/consent page stays usable after `authorize`."""


class Faults(BaseModel):
    """Failures a health system injects, switchable at run time (`PUT /_admin/{slug}/faults`).

    Shares are probabilities in [0, 1] drawn per request; 1.0 makes a fault certain.
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=60_000)
    """Added before every FHIR response."""
    rate_limit_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of FHIR requests answered 429 with `Retry-After`."""
    retry_after_s: int = Field(default=1, ge=0, le=3600)
    server_error_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of FHIR requests answered with one of `server_error_statuses`."""
    server_error_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503])
    drop_connection_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of FHIR responses whose connection is closed halfway through the body."""
    malformed_json_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of search and `$everything` pages sent as truncated, unparseable JSON."""
    expire_access_tokens_after: int | None = Field(default=None, ge=0)
    """An access token stops working (401 invalid_token) after this many FHIR requests."""
    refresh_invalid_grant: bool = False
    """Refresh answers `invalid_grant` and the grant is revoked (consent withdrawn at source)."""
    token_endpoint_faults: bool = False
    """Also apply latency, 429 and 5xx to the token endpoint (refresh under load)."""
    binary_first_byte_delay_ms: int = Field(default=0, ge=0, le=120_000)
    """A slow attachment server: wait this long before the first byte of a `Binary`."""
    binary_bytes_per_s: int | None = Field(default=None, ge=1024)
    """A slow attachment server: throttle `Binary` bodies to this rate."""
    portal_opener_policy: Literal["same-origin", "same-origin-allow-popups"] | None = None
    """Send this `Cross-Origin-Opener-Policy` on the sign-in and consent pages, as real portals
    do (Epic MyChart sends `same-origin`): it cuts a sign-in popup off from its opener."""


class HealthSystem(_Frozen):
    """One synthetic health system, served under `/{slug}/fhir` and `/{slug}/auth`."""

    slug: str = Field(pattern=r"^[a-z][a-z0-9-]{1,40}$")
    name: str
    aliases: tuple[str, ...] = ()
    website: str
    city: str
    state: str
    postal_code: str
    platform_type: str
    """What the platform's catalog reports (`smart`, `epic`, `cerner`); selects crawler quirks."""
    behaviour: str
    """One line for humans: what is special about this system."""
    quirks: Quirks = Quirks()
    lifetimes: TokenLifetimes = TokenLifetimes()
    personas: tuple[Persona, ...]
    faults: Faults = Field(default_factory=Faults)
    """Faults active at start-up; change them at run time through `SandboxState`."""
    seed: int = 0
    """Mixed into every persona's generator seed, so systems hold different patients."""

    def persona(self, persona_id: str) -> Persona | None:
        return next((p for p in self.personas if p.persona_id == persona_id), None)

    def persona_by_username(self, username: str) -> Persona | None:
        return next((p for p in self.personas if p.username == username), None)


class Client(_Frozen):
    """An OAuth client registered at every sandbox health system."""

    client_id: str
    kind: ClientKind
    secret: str | None = None
    """For `confidential-symmetric` (client_secret_basic)."""
    jwks: dict[str, Any] | None = None
    """Public keys for `confidential-asymmetric` (private_key_jwt), as a JWKS document."""
    redirect_uris: tuple[str, ...] = ()
    allow_loopback_redirects: bool = True
    """Accept any http(s) redirect URI on 127.0.0.1, ::1 or localhost, whatever the port."""
