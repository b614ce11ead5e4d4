"""The OpenTelemetry side of `ehiconnect.tracing`: imported only when tracing is configured.

One tracer provider of our own (not the global one, so tests can start and stop it), a batch
processor exporting OTLP/HTTP through `ScrubbingExporter`, and the maintained instrumentations:
httpx (every outbound request: FHIR, token refresh, webhooks), SQLAlchemy (statements, without
parameters) and FastAPI (one server span per request, `instrument_app`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ehiconnect import __version__
from ehiconnect.tracing import AttributeValue, SpanHandle, TracingConfig
from ehiconnect.tracing.scrub import RESOURCE_TYPE_KEY, scrub_attributes, scrub_text

_PROPAGATOR = TraceContextTextMapPropagator()


class ScrubbingExporter(SpanExporter):
    """Hands the inner exporter copies of the spans with `scrub_attributes` applied (in the
    batch processor's thread, off the request path)."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def scrubbed(span: ReadableSpan) -> ReadableSpan:
    outbound = span.kind in (SpanKind.CLIENT, SpanKind.PRODUCER)
    attributes = scrub_attributes(span.attributes or {}, outbound=outbound)
    name = span.name
    if outbound and RESOURCE_TYPE_KEY in attributes and " " not in name:
        name = f"{name} {attributes[RESOURCE_TYPE_KEY]}"  # "GET Observation"
    status = span.status
    if status.description:
        status = Status(status.status_code, scrub_text(status.description))
    events = [
        Event(
            event.name,
            scrub_attributes(event.attributes or {}, outbound=outbound),
            event.timestamp,
        )
        for event in span.events
    ]
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _Handle:
    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


class OtelTracing:
    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        sampler = (
            ParentBased(TraceIdRatioBased(config.sample_ratio))
            if config.sample_ratio is not None
            else None  # the SDK reads OTEL_TRACES_SAMPLER / _ARG
        )
        self.provider = TracerProvider(
            resource=Resource.create(
                {"service.name": config.service_name, "service.version": __version__}
            ),
            sampler=sampler,
        )
        exporter = OTLPSpanExporter(
            endpoint=config.traces_endpoint,
            headers=dict(config.headers) if config.headers else None,
        )
        self.provider.add_span_processor(BatchSpanProcessor(ScrubbingExporter(exporter)))
        self.tracer = self.provider.get_tracer("ehiconnect", __version__)
        self._httpx = HTTPXClientInstrumentor()
        self._httpx.instrument(tracer_provider=self.provider)
        self._sqlalchemy: SQLAlchemyInstrumentor | None = None
        if config.database_spans:
            self._sqlalchemy = SQLAlchemyInstrumentor()
            # SQLAlchemy 2.1 is outside its declared range but uses the same engine events.
            self._sqlalchemy.instrument(
                tracer_provider=self.provider, enable_commenter=False, skip_dep_check=True
            )
        self._apps: list[FastAPI] = []

    def instrument_app(self, app: FastAPI) -> None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=",".join(f"{path}$" for path in self.config.excluded_paths) or None,
            exclude_spans=["receive", "send"],
        )
        self._apps.append(app)

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None,
        *,
        link: str | None,
        root: bool,
    ) -> Iterator[SpanHandle]:
        links: list[Link] = []
        if link:
            linked = trace.get_current_span(_PROPAGATOR.extract({"traceparent": link}))
            if linked.get_span_context().is_valid:
                links.append(Link(linked.get_span_context()))
        context: Any = trace.set_span_in_context(trace.INVALID_SPAN) if root else None
        with self.tracer.start_as_current_span(
            name,
            context=context,
            attributes=dict(attributes or {}),
            links=links,
            # Error texts can quote URLs and ids: the span gets a scrubbed status, no traceback.
            record_exception=False,
        ) as current:
            try:
                yield _Handle(current)
            except BaseException as exc:
                current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    def current_traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    def shutdown(self) -> None:
        for app in self._apps:
            FastAPIInstrumentor.uninstrument_app(app)
        self._httpx.uninstrument()
        if self._sqlalchemy is not None:
            self._sqlalchemy.uninstrument()
        self.provider.shutdown()
