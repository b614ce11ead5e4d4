"""The one settings object.

Values come from, highest precedence first: keyword arguments, `EHICONNECT_*` environment
variables (nested fields with `__`, e.g. `EHICONNECT_JOBS__HEARTBEAT_SECONDS=5`), a TOML file
named by `EHICONNECT_CONFIG` (default: `<data_dir>/config.toml` when it exists), then the
defaults below. Build it once in the entry point (`Settings.load()`) and pass it down.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ehiconnect.tracing.settings import OtelSettings

# The retry schedule is data (DESIGN §2): attempt 1 immediately, then 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h and 10 h after the previous attempt; each delay varies by the jitter fraction.
DEFAULT_RETRY_SCHEDULE_SECONDS: tuple[float, ...] = (
    0,
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
)
DEFAULT_JITTER_FRACTION = 0.2


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8400
    public_base_url: str | None = Field(
        default=None,
        description="URL at which browsers and customers reach the API; default http://host:port",
    )
    public_rate_limit_per_minute: int = Field(
        default=120,
        ge=1,
        description="Requests per minute per client address on public endpoints, one budget for "
        "all API processes (kept in PostgreSQL)",
    )
    public_rate_limit_burst: int = Field(
        default=40, ge=1, description="Requests a client may make at once before the rate applies"
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        ge=1,
        description="On SIGTERM `serve` stops accepting and finishes in-flight requests for at "
        "most this long",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one is refused with 413 unread",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: the connecting address is the client",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics answers only `Authorization: Bearer <this>` (the "
        "metrics reveal volumes per organization's health systems); unset: open",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"api.trusted_proxies: {entry!r} is not an IP address or CIDR network"
                ) from None
        return value


class JobSettings(BaseModel):
    concurrency: int = 4
    heartbeat_seconds: float = 2.0
    # Several heartbeats: a threshold at or below the heartbeat re-queues jobs still running.
    # Threshold + check interval bound how long a killed worker's job waits (about 15 s).
    stalled_after_seconds: float = 10.0
    stalled_check_cron: str = Field(
        default="* * * * * */5",
        description="When to look for stalled jobs (cron; an optional 6th field, last, is seconds)",
    )
    finished_job_retention_hours: int = Field(
        default=24,
        ge=1,
        description="Succeeded job rows are deleted this long after they ended (the platform's "
        "own tables keep the history); failed ones are kept for review",
    )
    old_jobs_cleanup_cron: str = "17 * * * *"
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM a worker takes no new job and lets running ones finish for this "
        "long, then aborts them for another worker to retry (exports resume from staging)",
    )
    extra_task_modules: list[str] = Field(
        default_factory=list, description="Modules whose `blueprint` adds tasks (plug-ins, tests)"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the worker's own Prometheus /metrics endpoint (`ehiconnect worker "
        "--metrics-port`); unset: none",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface the worker's metrics endpoint binds (0.0.0.0 for a scraper on "
        "another host)",
    )


class DatabaseSettings(BaseModel):
    """Connections each process may hold: a budget (see docs/deploy.md for a fleet's total)."""

    pool_size: int | None = Field(
        default=None,
        ge=1,
        description="Connections of the process's main pool; default: API 10, a worker (and "
        "the CLI, which may run jobs in-process) jobs.concurrency + 2",
    )
    max_overflow: int = Field(
        default=0,
        ge=0,
        description="Extra connections a main pool may open in a burst (closed when returned); "
        "counted in the budget",
    )
    jobs_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="Connections of the job queue's pool; default: 3 for a worker, 1 otherwise",
    )
    pool_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a caller waits for a free pooled connection before an error",
    )
    connect_timeout_seconds: int = Field(
        default=10, ge=1, description="How long opening one connection may take"
    )
    statement_timeout_ms: int | None = Field(
        default=None,
        ge=0,
        description="PostgreSQL statement_timeout for this process's sessions; unset = the "
        "server's or role's own setting",
    )


class KeySettings(BaseModel):
    rotation_grace_hours: float = Field(
        default=24.0, description="How long a rotated-out private key keeps working"
    )


class VaultSettings(BaseModel):
    keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Key id → base64 of 32 random bytes; unset = a key file in data_dir",
    )
    active_kid: str | None = Field(default=None, description="Key id new secrets are sealed with")


class SandboxSettings(BaseModel):
    base_url: str = Field(
        default="http://127.0.0.1:8500",
        description="Where the sandbox health systems answer; listed in the test-mode catalog",
    )
    enabled: bool = True


class CatalogSettings(BaseModel):
    builtin_sources: dict[str, str] = Field(
        default_factory=lambda: {"sandbox": "ehiconnect.sandbox.catalog_sync:sandbox_catalog_data"},
        description=(
            "The test-mode catalog: source name → `module:function` taking sandbox.base_url and "
            "returning CatalogData; listed at API start-up (when sandbox.enabled) and by "
            "`ehiconnect catalog sync-sandbox`. The platform imports them by name only"
        ),
    )


class ConsentSettings(BaseModel):
    flow_lifetime_minutes: float = Field(
        default=20.0, description="How long a patient has to finish signing in"
    )
    token_refresh_margin_seconds: float = Field(
        default=300.0, description="Refresh an access token this long before it expires"
    )
    token_refresh_margin_fraction: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="Never refresh earlier than this share of the token's lifetime before expiry "
        "(60 s tokens are refreshed 15 s before they expire, not before every request)",
    )
    refresh_check_cron: str = "*/5 * * * *"
    http_timeout_seconds: float = 15.0
    flow_retention_hours: float = Field(
        default=24.0,
        ge=0,
        description="Expired consent flows (sealed PKCE verifier, external_id, unread results) "
        "are deleted this long after they expired",
    )
    flow_purge_cron: str = "23 * * * *"


class ExportSettings(BaseModel):
    storage: Literal["local", "s3"] = "local"
    local_dir: Path | None = Field(default=None, description="Default: <data_dir>/exports")
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="Where customers reach the store, when not by s3_endpoint_url (workers use "
        "an internal name): presigned download links are signed for it; default: s3_endpoint_url",
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = ""
    retention_hours: float = Field(default=24.0, description="Files are deleted this long after")
    link_lifetime_hours: float = Field(default=24.0, description="Webhook download links expire")
    presigned_url_seconds: int = Field(default=300, description="S3 redirect URLs expire")
    deadline_minutes: float = Field(default=120.0, description="An export running longer fails")
    page_size: int = 200
    max_concurrency: int = Field(
        default=16,
        description="Requests at once to one health system (the crawl starts there and halves it "
        "whenever the server answers 429 or 503)",
    )
    min_concurrency: int = 1
    max_attempts: int = Field(default=6, description="Tries of one request before it is an error")
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    retry_after_cap_seconds: float = 120.0
    request_timeout_seconds: float = Field(
        default=60.0,
        description="A request to a health system is abandoned after this long without progress "
        "(connecting, sending or reading), then retried like one that got no response",
    )
    max_off_base_response_bytes: int = Field(
        default=1 << 30,
        description="Largest attachment taken from outside the endpoint's FHIR base",
    )
    max_json_response_bytes: int = Field(
        default=256 << 20,
        ge=1 << 20,
        # Held whole in memory and parsed into Python objects several times its size: past
        # 1 GiB the limit no longer protects a worker's memory.
        le=1 << 30,
        description="Largest FHIR JSON response (a search page, a read, the CapabilityStatement) "
        "taken from a health system, once decompressed, from 1 MiB to 1 GiB; a larger one is an "
        "error for that request (attachments are streamed and not bounded by this)",
    )
    retention_check_cron: str = "*/10 * * * *"
    reconcile_cron: str = Field(
        default="* * * * * */15",
        description="When pending tasks are checked against their jobs: a task whose job ended "
        "is re-queued or failed, one past its deadline fails with `timeout` (6th, last field = "
        "seconds)",
    )


class WebhookSettings(BaseModel):
    timeout_seconds: float = Field(
        default=15.0, gt=0, description="A delivery succeeds only on a 2xx within this time"
    )
    retry_schedule_seconds: tuple[float, ...] = Field(
        default=DEFAULT_RETRY_SCHEDULE_SECONDS,
        min_length=1,
        description="Delay before each attempt; the first is normally 0 (immediately)",
    )
    jitter_fraction: float = Field(
        default=DEFAULT_JITTER_FRACTION, ge=0, lt=1, description="Each delay varies by ± this"
    )
    disable_after_days: float = Field(
        default=5.0, gt=0, description="Disable an endpoint that failed every attempt this long"
    )
    log_retention_days: float = Field(default=15.0, gt=0, description="Keep attempt logs this long")
    event_retention_days: float = Field(
        default=30.0, gt=0, description="Keep events (listable, re-sendable) this long"
    )
    secret_rotation_grace_hours: float = Field(
        default=24.0, ge=0, description="How long a rotated-out secret keeps signing"
    )
    allow_private_targets: bool = Field(
        default=False,
        description="Let live-mode endpoints resolve to private/loopback addresses (self-hosting)",
    )
    response_excerpt_bytes: int = Field(default=1024, ge=0, le=65536)
    max_response_bytes: int = Field(
        default=64 * 1024, ge=0, description="Read at most this much of a receiver's response"
    )
    claim_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A claimed delivery whose worker vanished is retried after this long; "
        "keep it above timeout_seconds",
    )
    batch_size: int = Field(
        default=100, gt=0, description="Deliveries claimed, and sent concurrently, per worker pass"
    )
    max_concurrent_passes: int = Field(
        default=4,
        gt=0,
        description="Passes a worker's dispatcher runs at once (each up to batch_size sends)",
    )
    sweep_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest a dispatcher sleeps with no notification and nothing falling due: "
        "what a missed notification can cost at most",
    )
    contended_recheck_seconds: float = Field(
        default=0.05,
        ge=0,
        description="When due deliveries are locked by another worker's claim, look again "
        "after this long",
    )
    reconnect_backoff_seconds: tuple[float, ...] = Field(
        default=(0.1, 0.5, 1.0, 2.0, 5.0),
        min_length=1,
        description="Waits before each retry after losing the database (the LISTEN "
        "connection or a claim); the last one repeats",
    )
    listen_probe_seconds: float = Field(
        default=30.0, gt=0, description="How often an idle LISTEN connection is checked alive"
    )

    @model_validator(mode="after")
    def _lease_outlasts_a_request(self) -> WebhookSettings:
        if self.claim_lease_seconds <= self.timeout_seconds:
            raise ValueError(
                f"webhooks.claim_lease_seconds ({self.claim_lease_seconds:g}) must exceed "
                f"webhooks.timeout_seconds ({self.timeout_seconds:g}), or a slow but live "
                "delivery would be sent twice"
            )
        if any(wait < 0 for wait in self.reconnect_backoff_seconds):
            raise ValueError("webhooks.reconnect_backoff_seconds must not be negative")
        return self

    @property
    def disable_after(self) -> dt.timedelta:
        return dt.timedelta(days=self.disable_after_days)

    @property
    def log_retention(self) -> dt.timedelta:
        return dt.timedelta(days=self.log_retention_days)

    @property
    def event_retention(self) -> dt.timedelta:
        return dt.timedelta(days=self.event_retention_days)

    @property
    def claim_lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.claim_lease_seconds)

    @property
    def secret_rotation_grace(self) -> dt.timedelta:
        return dt.timedelta(hours=self.secret_rotation_grace_hours)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EHICONNECT_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path(".ehiconnect")
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL; when unset an embedded PostgreSQL runs in data_dir/pg",
    )
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "console"
    api: ApiSettings = ApiSettings()
    jobs: JobSettings = JobSettings()
    db: DatabaseSettings = DatabaseSettings()
    keys: KeySettings = KeySettings()
    vault: VaultSettings = VaultSettings()
    sandbox: SandboxSettings = SandboxSettings()
    catalog: CatalogSettings = CatalogSettings()
    consent: ConsentSettings = ConsentSettings()
    exports: ExportSettings = ExportSettings()
    webhooks: WebhookSettings = WebhookSettings()
    otel: OtelSettings = OtelSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        return cls(**overrides)

    @property
    def public_base_url(self) -> str:
        return self.api.public_base_url or f"http://{self.api.host}:{self.api.port}"


def _config_file() -> Path | None:
    named = os.environ.get("EHICONNECT_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(
                f"EHICONNECT_CONFIG names {path}, which is not a file; "
                "create it or unset the variable"
            )
        return path
    data_dir = Path(os.environ.get("EHICONNECT_DATA_DIR", ".ehiconnect"))
    default = data_dir / "config.toml"
    return default if default.is_file() else None
