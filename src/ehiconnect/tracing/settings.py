"""Tracing settings (`otel` section of the one Settings object).

Tracing is off unless an OTLP endpoint is configured here or through the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` environment variables.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class OtelSettings(BaseModel):
    enabled: bool | None = Field(
        default=None,
        description="Force tracing on or off; unset: on when an OTLP endpoint is configured "
        "(here or in OTEL_EXPORTER_OTLP_ENDPOINT), off otherwise",
    )
    endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL (spans are posted to <endpoint>/v1/traces); "
        "unset: the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variables",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Headers sent with every export to the collector (e.g. an API key); unset: "
        "OTEL_EXPORTER_OTLP_HEADERS",
    )
    service_name: str | None = Field(
        default=None,
        description="service.name of this process's spans; unset: OTEL_SERVICE_NAME, else "
        "ehiconnect-api or ehiconnect-worker",
    )
    sample_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of new traces kept (child spans follow their parent's decision); "
        "unset: OTEL_TRACES_SAMPLER, else every trace",
    )
    database_spans: bool = Field(
        default=True, description="A span per SQL statement (SQLAlchemy instrumentation)"
    )
    excluded_paths: list[str] = Field(
        default_factory=lambda: ["/healthz", "/readyz", "/metrics"],
        description="API paths answered without a span (probes and scrapes)",
    )
