"""Traces: off without an endpoint, exported over real OTLP/HTTP with one; the server span of a
request continues the caller's trace; an event carries its trace through Redis to the span its
consumer handles it in; log lines written there carry the trace id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from duochat_common.app import build_app
from duochat_common.events import Consumer, Envelope, EventBus
from duochat_common.events.schemas import BoardApplied, UserRef
from duochat_common.logs import JsonFormatter
from duochat_common.settings import ServiceSettings
from duochat_common.telemetry import Telemetry
from duochat_common.testing import REDIS_URL, unique_prefix
from duochat_common.tracing import current_traceparent, provider_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


router = APIRouter()


@router.get("/boards/{board_id}")
async def board(board_id: int) -> dict[str, str | None]:
    logging.getLogger("duochat.test").info("inside")
    event = BoardApplied(
        board_id=board_id,
        board_title="t",
        room_id="r",
        writer=UserRef(id=1, username="w"),
        applicant=UserRef(id=2, username="a"),
    )
    return {"traceparent": event.envelope().traceparent, "current": current_traceparent()}


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def test_tracing_is_off_without_an_endpoint() -> None:
    assert provider_for("chat", ServiceSettings()) is None
    assert Telemetry.of("chat", ServiceSettings()).tracer is None
    assert current_traceparent() is None


async def test_a_request_continues_the_callers_trace_and_its_events_carry_it(spans) -> None:
    provider, exporter = spans
    telemetry = Telemetry("boards", tracer_provider=provider)
    app = build_app(
        title="t",
        routers=[router],
        lifespan=nothing,
        telemetry=telemetry,
    )
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(JsonFormatter("boards"))
    logging.getLogger("duochat.test").addHandler(handler)
    logging.getLogger("duochat.test").setLevel(logging.INFO)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = (await client.get("/boards/7", headers={"traceparent": TRACEPARENT})).json()
    finally:
        logging.getLogger("duochat.test").removeHandler(handler)
    (span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == "GET /boards/{board_id}"
    assert span.attributes["http.route"] == "/boards/{board_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    # The event made inside the request names this span as its parent.
    assert body["traceparent"] == body["current"]
    assert body["traceparent"] == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    assert json.loads(log.getvalue())["traceId"] == "0af7651916cd43dd8448eb211c80319c"


def test_an_envelope_without_a_trace_is_the_document_it_always_was() -> None:
    plain = Envelope(type="t", data={"a": None})
    assert "traceparent" not in json.loads(plain.to_json())
    assert json.loads(plain.to_json())["data"] == {"a": None}
    traced = Envelope(type="t", data={}, traceparent=TRACEPARENT)
    assert Envelope.from_json(traced.to_json()).traceparent == TRACEPARENT


async def test_a_consumer_handles_an_event_in_the_trace_that_sent_it(spans) -> None:
    provider, exporter = spans
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    stream = f"{unique_prefix()}events.test"
    seen: list[str | None] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(current_traceparent())

    consumer = Consumer(
        redis,
        stream=stream,
        group="g",
        consumer="c",
        handler=handler,
        block_ms=100,
        tracer=provider.get_tracer("test"),
    )
    try:
        await consumer.ensure_group()
        await EventBus(redis).publish_many(
            stream,
            [
                Envelope(type="board.applied", data={}, traceparent=TRACEPARENT),
                Envelope(type="board.created", data={}),
            ],
        )
        async with asyncio.timeout(10):
            while len(seen) < 2:
                await consumer.run_once()
    finally:
        await redis.delete(stream, f"{stream}:attempts:g")
        async for key in redis.scan_iter(match=f"{stream}:*"):
            await redis.delete(key)
        await redis.aclose()
    traced, fresh = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    assert traced.name == "board.applied process" and traced.kind is SpanKind.CONSUMER
    assert f"{traced.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert traced.attributes["messaging.destination.name"] == stream
    assert fresh.name == "board.created process" and fresh.parent is None  # a trace of its own
    assert seen[0] is not None and seen[0].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


class Collector:
    """An OTLP/HTTP receiver on a real port: what the SDK's exporter sends, decoded."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.paths.append(self.path)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.requests.append(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_spans_leave_over_otlp_with_the_service_name_and_xray_compatible_ids() -> None:
    collector = Collector()
    try:
        settings = ServiceSettings(otel_exporter_otlp_endpoint=collector.url)
        provider = provider_for(f"otlp-{time.time_ns()}", settings)
        assert provider is not None
        with provider.get_tracer("t").start_as_current_span("work") as span:
            trace_id = span.get_span_context().trace_id
        assert provider.force_flush(10_000)  # type: ignore[attr-defined]
    finally:
        collector.close()
    assert collector.paths == ["/v1/traces"]
    (resource_spans,) = collector.requests[0].resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"].startswith("duochat-otlp-")
    (exported,) = resource_spans.scope_spans[0].spans
    assert exported.name == "work" and int.from_bytes(exported.trace_id, "big") == trace_id
    # X-Ray wants the trace's start time in the id's first 32 bits.
    assert abs((trace_id >> 96) - time.time()) < 60
