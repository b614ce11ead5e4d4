"""Tracing's pure parts: what a span may carry out, when tracing is on, and that it costs no
OpenTelemetry import when off."""

from __future__ import annotations

import subprocess
import sys

from ehiconnect.tracing import OtelSettings, resolve_config
from ehiconnect.tracing.scrub import scrub_attributes, scrub_text


def test_outbound_url_keeps_origin_and_resource_type_only() -> None:
    attributes = {
        "http.method": "GET",
        "http.url": "https://fhir.example.org:8443/r4/Observation?patient=pt-123&_count=200",
        "url.path": "/r4/Observation",
        "url.query": "patient=pt-123&_count=200",
        "http.status_code": 200,
    }
    out = scrub_attributes(attributes, outbound=True)
    assert out == {
        "http.method": "GET",
        "http.url": "https://fhir.example.org:8443",
        "server.address": "fhir.example.org",
        "server.port": 8443,
        "http.status_code": 200,
        "fhir.resource_type": "Observation",
    }


def test_outbound_read_by_id_names_the_type_not_the_id() -> None:
    out = scrub_attributes({"url.full": "http://h/fhir/Patient/Patient"}, outbound=True)
    assert out["url.full"] == "http://h"
    assert out["fhir.resource_type"] == "Patient"
    out = scrub_attributes({"url.full": "http://h/fhir/Abc123/x"}, outbound=True)
    assert "fhir.resource_type" not in out  # an unknown segment may be an id: never reported
    assert (
        scrub_attributes({"url.full": "http://h/fhir/metadata"}, outbound=True)[
            "fhir.resource_type"
        ]
        == "CapabilityStatement"
    )


def test_inbound_url_keeps_path_without_query() -> None:
    out = scrub_attributes(
        {
            "http.url": "http://api/v1/bridge/callback?code=abc&state=xyz",
            "http.target": "/v1/bridge/callback?code=abc&state=xyz",
            "url.query": "code=abc&state=xyz",
            "http.route": "/v1/bridge/callback",
        },
        outbound=False,
    )
    assert out == {
        "http.url": "http://api/v1/bridge/callback",
        "http.target": "/v1/bridge/callback",
        "http.route": "/v1/bridge/callback",
    }


def test_free_text_loses_urls_paths_and_secrets() -> None:
    text = scrub_text(
        "https://fhir.example.org/r4/Patient/pt-123?x=1: HTTP 500; Bearer eyJabc.def.ghi "
        "private_test_k3y"
    )
    assert "pt-123" not in text
    assert "eyJabc" not in text
    assert "private_test_k3y" not in text
    assert text.startswith("https://fhir.example.org/…")


def test_off_unless_an_endpoint_is_configured() -> None:
    assert resolve_config(OtelSettings(), role="api", environ={}) is None
    from_env = resolve_config(
        OtelSettings(),
        role="worker",
        environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "ehi"},
    )
    assert from_env is not None
    assert from_env.traces_endpoint is None  # the exporter reads the standard variables
    assert from_env.service_name == "ehi"
    configured = resolve_config(OtelSettings(endpoint="http://c:4318/"), role="worker", environ={})
    assert configured is not None
    assert configured.traces_endpoint == "http://c:4318/v1/traces"
    assert configured.service_name == "ehiconnect-worker"
    assert resolve_config(OtelSettings(endpoint="http://c:4318", enabled=False), role="api") is None
    assert (
        resolve_config(
            OtelSettings(endpoint="http://c:4318"),
            role="api",
            environ={"OTEL_SDK_DISABLED": "true"},
        )
        is None
    )


def test_no_opentelemetry_sdk_or_instrumentation_is_imported_when_off() -> None:
    code = (
        "import sys\n"
        "from ehiconnect.settings import Settings\n"
        "from ehiconnect.api.app import create_app\n"
        "import ehiconnect.jobs.worker, ehiconnect.exports.runner, ehiconnect.webhooks.delivery\n"
        "create_app(Settings())\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.instrumentation',"
        " 'opentelemetry.exporter', 'ehiconnect.tracing._otel')\n"
        "loaded = [m for m in sys.modules if m.startswith(heavy)]\n"
        "assert not loaded, loaded\n"
    )
    env = {"PATH": "/usr/bin:/bin", "EHICONNECT_DATA_DIR": "/nonexistent-ehiconnect"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
