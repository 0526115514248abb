"""Traces with OpenTelemetry: on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, off otherwise.

Off means no tracer at all: every hook checks for one and does nothing else, so a service
without an endpoint runs no OpenTelemetry SDK code. On, each service has one SDK provider (its
``service.name`` resource) exporting over OTLP/HTTP in batches; on AWS the endpoint is the ADOT
collector beside the task, which sends the spans on to X-Ray.

What a trace follows:
- HTTP: a server span per request (``TracingMiddleware``), its parent taken from the caller's
  W3C ``traceparent``; httpx clients send theirs (``instrument``).
- STOMP: a span per SEND, from the frame to the stored message (chat's session).
- Redis Streams: an event carries the ``traceparent`` of the span that made it (``Envelope``),
  and the consumer handles it in a span of that trace. chat's writer stores messages of many
  SENDs in one batch, so each message draft carries its own ``traceparent`` through the writer.

Log lines carry the current trace id (``logs.JsonFormatter``).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duochat_common.metrics import route_template

if TYPE_CHECKING:
    import httpx

    from duochat_common.settings import ServiceSettings

_W3C = TraceContextTextMapPropagator()


def provider_for(service: str, settings: ServiceSettings) -> TracerProvider | None:
    """The process's SDK provider for ``service`` when an OTLP endpoint is set, else None."""
    endpoint = settings.otel_exporter_otlp_endpoint
    return _otlp_provider(service, endpoint) if endpoint else None


@functools.cache
def _otlp_provider(service: str, endpoint: str) -> TracerProvider:
    # Imported here: a process that does not trace never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (parent-based,
    # always on by default), as every OpenTelemetry SDK reads it.
    provider = SdkTracerProvider(
        resource=Resource.create({"service.name": f"duochat-{service}"}),
        id_generator=_xray_ids(),
    )
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _xray_ids() -> Any:
    """Trace ids whose first 32 bits are the start time in seconds: X-Ray rejects a trace
    whose embedded time is more than 30 days old, which a random id may look like."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class XRayIdGenerator(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            return (int(time.time()) << 96) | random.getrandbits(96)

    return XRayIdGenerator()


def tracer_of(provider: TracerProvider | None, service: str) -> Tracer | None:
    return None if provider is None else provider.get_tracer(f"duochat.{service}")


def instrument(client: httpx.AsyncClient, provider: TracerProvider | None) -> httpx.AsyncClient:
    """A client span per call and the ``traceparent`` header, when tracing is on."""
    if provider is not None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    return client


# -- context in and out ----------------------------------------------------------------------


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when nothing is traced."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def context_of(traceparent: str | None) -> Context | None:
    """The context a ``traceparent`` names (None: start a new trace)."""
    if not traceparent:
        return None
    return _W3C.extract({"traceparent": traceparent})


def trace_id_of(span: Span | None = None) -> str | None:
    """The current (or ``span``'s) trace id as 32 hex digits, as X-Ray and log lines show it."""
    ctx = (span or trace.get_current_span()).get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


@contextmanager
def consumer_span(
    tracer: Tracer,
    name: str,
    *,
    traceparent: str | None,
    attributes: Mapping[str, str | int],
    links: list[trace.Link] | None = None,
) -> Iterator[Span]:
    """A span for work that an event (or a frame) asked for, in the trace that sent it."""
    with tracer.start_as_current_span(
        name,
        context=context_of(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=dict(attributes),
        links=links,
    ) as span:
        yield span


def link_to(traceparent: str | None) -> trace.Link | None:
    ctx = context_of(traceparent)
    if ctx is None:
        return None
    span_ctx = trace.get_current_span(ctx).get_span_context()
    return trace.Link(span_ctx) if span_ctx.is_valid else None


# -- HTTP server spans -----------------------------------------------------------------------


class TracingMiddleware:
    """A server span per HTTP request, named after its route template once routed. Installed
    only when tracing is on."""

    def __init__(self, app: ASGIApp, *, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", [])
            if key in (b"traceparent", b"tracestate")
        }
        method = scope["method"]
        with self.tracer.start_as_current_span(
            method,
            context=_W3C.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:
            status = 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
