"""The tracker's settings, loaded on their own: `TrackerSettings.load()`.

Values come from, highest precedence first: keyword arguments, `EHICONNECT_TRACKER__*`
environment variables (nested fields with `__`: `EHICONNECT_TRACKER__RETRY__MAX_EXPORT_REQUESTS`),
the `[tracker]` table of the TOML file the platform reads too (`EHICONNECT_CONFIG`, default
`<EHICONNECT_DATA_DIR>/config.toml` when it exists), then the defaults below. The names are the
ones the tracker had as a section of the platform's settings; the platform's `Settings` no longer
knows them.

Policies are values here, not code: the retry schedule, which export failure reasons are worth
another try, how long to wait for a webhook before polling, how long downloads are kept.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ehiconnect.vocabulary import ExportFailureReason

ENV_PREFIX = "EHICONNECT_TRACKER__"
TOML_TABLE = "tracker"

# An export that failed for one of these reasons is requested again; the others need the patient
# (scope_patient_missing: reconnect with a patient scope) or support (suppressed_please_contact).
DEFAULT_RETRYABLE_REASONS: tuple[str, ...] = (
    ExportFailureReason.TOKEN_REFRESH_FAILURE,
    ExportFailureReason.RESOURCE_PATIENT_FAILURE,
    ExportFailureReason.TIMEOUT,
)


class RetryPolicy(BaseModel):
    """Delays (seconds) between attempts of one step; the list length is the attempt budget."""

    backoff_seconds: list[float] = Field(default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0])
    retryable_export_reasons: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RETRYABLE_REASONS),
        description="patient.ehi_export_failed reasons for which a new export is requested",
    )
    max_export_requests: int = Field(
        default=3, description="Export requests per consent, first one included"
    )


class FhirServerSinkSettings(BaseModel):
    enabled: bool = False
    base_url: str | None = Field(default=None, description="FHIR R4 base, e.g. http://hapi/fhir")
    bundle_type: Literal["transaction", "batch"] = Field(
        default="transaction",
        description="transaction: a reference cycle (Encounter <-> Condition) can be created",
    )
    batch_size: int = Field(default=200, ge=1, description="Resources per Bundle")
    batch_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        description="JSON bytes per Bundle; a larger single resource goes alone",
    )
    # Authentication: the first that is configured of token_url (OAuth 2.0 client credentials:
    # Azure Health Data Services, Medplum), token_command (a command printing a token: gcloud,
    # az), aws_region (SigV4: AWS HealthLake), bearer_token, basic_user; none for an open server.
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = Field(
        default=None,
        description="e.g. https://<workspace>-<fhir>.fhir.azurehealthcareapis.com/.default",
    )
    token_command: str | None = Field(
        default=None, description="e.g. gcloud auth print-access-token (run without a shell)"
    )
    token_command_ttl_seconds: float = Field(default=300.0, gt=0)
    aws_region: str | None = Field(
        default=None, description="AWS HealthLake: sign requests (SigV4) for this region"
    )
    bearer_token: SecretStr | None = None
    basic_user: str | None = None
    basic_password: SecretStr | None = None
    timeout_seconds: float = 60.0


class NotifySettings(BaseModel):
    smtp_host: str | None = Field(default=None, description="Unset: no email")
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "records@localhost"
    callback_url: str | None = Field(default=None, description="POSTed a JSON summary when set")
    email_of_external_id: dict[str, str] = Field(
        default_factory=dict,
        description="Where to email a patient, by the external_id the app gave the widget; "
        "apps with their own user directory pass the address to notify() instead",
    )


class TrackerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = 8600
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the tracker's own Prometheus /metrics endpoint (`ehiconnect tracker "
        "serve --metrics-port`); unset: none",
    )
    platform_base_url: str = Field(
        default="http://127.0.0.1:8400/v1",
        description="The platform API base (ehiconnect, or the hosted service it follows)",
    )
    public_id: str = ""
    private_key: SecretStr = SecretStr("")
    webhook_secrets: list[SecretStr] = Field(
        default_factory=list, description="whsec_… secrets; several during a rotation"
    )
    webhook_tolerance_seconds: int = 300
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted (webhooks, widget events); a larger one is "
        "refused with 413 before it is read",
    )
    stitch_events_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token the customer's frontend backend sends to /stitch-events",
    )
    fhir_api_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token for the tracker's FHIR read API (/fhir/...); unset: the API "
        "is off",
    )
    widget_event_cache_hours: float = Field(
        default=24.0, description="How long recent widget events are kept for support, replay"
    )
    worker_poll_seconds: float = Field(
        default=0.5,
        gt=0,
        description="How often the tracker's worker looks for due jobs. A job's next step is "
        "queued while the step before still holds the job's lock, and the queue announces it "
        "only then, so without this the next step waits for the queue's 5 s poll",
    )
    auto_export: bool = Field(default=True, description="Request an export on each consent")
    retry: RetryPolicy = RetryPolicy()
    watchdog_after_minutes: float = Field(
        default=30.0, description="Poll the export status when no webhook came in this long"
    )
    storage: Literal["local", "s3"] = "local"
    storage_dir: Path | None = Field(default=None, description="Default: <data_dir>/tracker")
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = "tracker/"
    retention_hours: float = Field(default=24.0 * 7, description="Downloaded files are deleted")
    download_chunk_bytes: int = 1024 * 1024
    fhir_store_enabled: bool = True
    parquet_enabled: bool = False
    parquet_dir: Path | None = Field(default=None, description="Default: <data_dir>/parquet")
    fhir_server: FhirServerSinkSettings = FhirServerSinkSettings()
    notify: NotifySettings = NotifySettings()
    ingest_batch_size: int = Field(
        default=500, ge=1, description="Resources per batch into the FHIR store and Parquet"
    )
    inline_data_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64,
        description="A Binary line longer than this has its data decoded into its own stored "
        "object before ingesting; sinks get the resource with a pointer to it",
    )
    ingest_batch_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1, description="JSON bytes per batch (store, Parquet)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_values = InitSettingsSource(settings_cls, init_kwargs=config_file_table())
        return (init_settings, env_settings, file_values)

    @classmethod
    def load(cls, **overrides: Any) -> TrackerSettings:
        return cls(**overrides)


def config_file_table() -> dict[str, Any]:
    """The `[tracker]` table of the configuration file, or nothing when there is no file."""
    path = config_file()
    if path is None:
        return {}
    with path.open("rb") as stream:
        table = tomllib.load(stream).get(TOML_TABLE, {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [{TOML_TABLE}] should be a table of tracker settings")
    return table


def config_file() -> Path | None:
    """The TOML file of the platform's rule (the tracker reads its own table of it): the one
    `EHICONNECT_CONFIG` names, else `config.toml` in `EHICONNECT_DATA_DIR` when it exists."""
    named = os.environ.get("EHICONNECT_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(
                f"EHICONNECT_CONFIG names {path}, which is not a file; "
                "create it or unset the variable"
            )
        return path
    default = Path(os.environ.get("EHICONNECT_DATA_DIR", ".ehiconnect")) / "config.toml"
    return default if default.is_file() else None
