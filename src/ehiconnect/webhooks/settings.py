"""Webhook delivery settings (`webhooks` section of the one Settings object)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field, model_validator

from ehiconnect.webhooks.schedule import DEFAULT_JITTER_FRACTION, DEFAULT_RETRY_SCHEDULE_SECONDS


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
