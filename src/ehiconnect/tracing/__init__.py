"""OpenTelemetry tracing, off unless configured.

    tracing.install(settings.otel, role="worker")   # once per process, at its entry point
    tracing.instrument_app(app, settings.otel)      # the API: installs, then traces requests
    with tracing.span("export", {...}, link=traceparent) as span:
        span.set_attribute("ehiconnect.export.outcome", "success")
    tracing.current_traceparent()                   # W3C traceparent of the current span

When tracing is configured (an `otel.endpoint`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`),
`install` loads the SDK, the OTLP/HTTP exporter and the maintained instrumentations (FastAPI,
httpx, SQLAlchemy) from the `otel` extra. Otherwise nothing from OpenTelemetry is imported and
every call here is a cheap no-op. Every span passes through `scrub.scrub_attributes` on its way
out: no query string, outbound path, token or secret leaves the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ehiconnect.tracing.settings import OtelSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ehiconnect.tracing._otel import OtelTracing

__all__ = [
    "AttributeValue",
    "OtelSettings",
    "PhaseSpans",
    "SpanHandle",
    "TracingConfig",
    "current_traceparent",
    "enabled",
    "install",
    "instrument_app",
    "resolve_config",
    "shutdown",
    "span",
]

log = logging.getLogger(__name__)

AttributeValue = str | bool | int | float

EXTRA_MISSING = (
    "tracing is configured (otel settings or OTEL_EXPORTER_OTLP_ENDPOINT) but the OpenTelemetry "
    "packages are not installed; install them with `pip install 'ehiconnect[otel]'`, or turn "
    "tracing off with EHICONNECT_OTEL__ENABLED=false"
)


class SpanHandle(Protocol):
    def set_attribute(self, key: str, value: AttributeValue) -> None: ...

    def fail(self, description: str) -> None:
        """Mark the span as an error (the description is scrubbed on export)."""
        ...


class _NoSpan:
    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def fail(self, description: str) -> None:
        return None


NO_SPAN: SpanHandle = _NoSpan()


@dataclass(frozen=True)
class TracingConfig:
    service_name: str
    traces_endpoint: str | None
    """Full URL spans are posted to; None: the exporter reads the OTEL_EXPORTER_OTLP_* variables."""
    headers: Mapping[str, str] | None
    sample_ratio: float | None
    """None: OTEL_TRACES_SAMPLER decides (default: every trace)."""
    database_spans: bool
    excluded_paths: tuple[str, ...]


def resolve_config(
    otel: OtelSettings, *, role: str, environ: Mapping[str, str] | None = None
) -> TracingConfig | None:
    """What tracing this process should do, or None when it is off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or otel.enabled is False:
        return None
    from_env = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if otel.enabled is None and not otel.endpoint and not from_env:
        return None
    endpoint = otel.endpoint.rstrip("/") + "/v1/traces" if otel.endpoint else None
    return TracingConfig(
        service_name=otel.service_name or env.get("OTEL_SERVICE_NAME") or f"ehiconnect-{role}",
        traces_endpoint=endpoint,
        headers={k: v.get_secret_value() for k, v in otel.headers.items()} or None,
        sample_ratio=otel.sample_ratio,
        database_spans=otel.database_spans,
        excluded_paths=tuple(otel.excluded_paths),
    )


_active: OtelTracing | None = None


def install(otel: OtelSettings, *, role: str) -> bool:
    """Start tracing for this process when configured; True when it is on.

    The first configuration wins: a process that serves the API and runs jobs (`ehiconnect up`)
    has one tracer provider, named after the role that installed it first.
    """
    global _active
    if _active is not None:
        return True
    config = resolve_config(otel, role=role)
    if config is None:
        return False
    try:
        from ehiconnect.tracing._otel import OtelTracing
    except ImportError as exc:
        raise RuntimeError(EXTRA_MISSING) from exc
    _active = OtelTracing(config)
    log.info(
        "tracing on",
        extra={"service_name": config.service_name, "database_spans": config.database_spans},
    )
    return True


def instrument_app(app: FastAPI, otel: OtelSettings) -> None:
    """Trace the API's requests (a server span each) when tracing is configured."""
    if install(otel, role="api") and _active is not None:
        _active.instrument_app(app)


def enabled() -> bool:
    return _active is not None


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    link: str | None = None,
    root: bool = False,
) -> Iterator[SpanHandle]:
    """A span around the block, current inside it; a no-op when tracing is off.

    `link`: a W3C traceparent this span is linked to (the request that caused it).
    `root`: start a new trace instead of a child of the current span.
    """
    if _active is None:
        yield NO_SPAN
        return
    with _active.span(name, attributes, link=link, root=root) as handle:
        yield handle


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to hand to work done elsewhere (a job)."""
    return _active.current_traceparent() if _active is not None else None


class PhaseSpans:
    """Consecutive phase spans inside one task: `enter("discover")` ends the previous phase's
    span and makes a new one current, so the requests of a phase are its children.

    Enter and close from the same asyncio task (contexts are per task).
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._current: contextlib.ExitStack | None = None

    def enter(self, phase: str) -> None:
        self.close()
        if _active is None:
            return
        stack = contextlib.ExitStack()
        stack.enter_context(span(f"{self._prefix} {phase}", {"ehiconnect.phase": phase}))
        self._current = stack

    def close(self) -> None:
        if self._current is not None:
            current, self._current = self._current, None
            current.close()


def shutdown() -> None:
    """Export what is buffered, stop the instrumentations and turn tracing off (tests, exit)."""
    global _active
    if _active is not None:
        active, _active = _active, None
        active.shutdown()
