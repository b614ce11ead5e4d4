"""`GET /metrics` of the API: Prometheus text, open by default, behind `api.metrics_token` when
one is set (refused with the envelope otherwise)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from ehiconnect.settings import Settings


def test_metrics_are_prometheus_text_with_the_database_gauges(http: httpx.Client) -> None:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "ehiconnect_exports_requested",
        "ehiconnect_queue_jobs",
        "ehiconnect_webhook_deliveries_pending",
        "process_cpu_seconds",
    } <= names
    assert "ehiconnect_webhook_deliveries_pending 0.0" in response.text


def test_a_metrics_token_is_required_once_set(http: httpx.Client, settings: Settings) -> None:
    settings.api.metrics_token = SecretStr("s3cret-metrics")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic czNjcmV0"}):
        refused = http.get("/metrics", headers=headers)
        assert refused.status_code == 401
        body = refused.json()
        assert body["success"] is False
        assert body["error"] == "metrics_token_required"
        assert "metrics_token" in body["error_description"]
    allowed = http.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    assert allowed.status_code == 200
