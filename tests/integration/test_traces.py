"""One trace follows a board match from boards' request, through Redis Streams into chat's
SYSTEM line (which goes through chat's writer and out as a chat event) and into notify's alarms;
another follows a STOMP SEND from chat into notify, and chat's call to boards carries its trace
over HTTP. Spans land in an in-memory exporter, one tracer provider per service."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from duochat_testing.chat import StompClient, collect
from tests.integration.flows import register_and_login
from tests.integration.inprocess import InProcessStack, running


@pytest.fixture
def traced() -> Iterator[tuple[InProcessStack, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    providers: dict[str, TracerProvider] = {}

    def provider(name: str) -> dict[str, TracerProvider]:
        providers[name] = TracerProvider(
            resource=Resource.create({"service.name": f"duochat-{name}"})
        )
        providers[name].add_span_processor(SimpleSpanProcessor(exporter))
        return {"tracer_provider": providers[name]}

    with running(provider) as stack:
        yield stack, exporter
    for p in providers.values():
        p.shutdown()


def service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"]).removeprefix("duochat-")


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


def wait_for(exporter: InMemorySpanExporter, trace_id: int, want: set[tuple[str, str]]) -> None:
    """Until the trace holds a span named ``name`` of each ``(service, name)``."""
    deadline = time.monotonic() + 20
    while not want <= {(service(s), s.name) for s in in_trace(exporter, trace_id)}:
        if time.monotonic() > deadline:
            got = sorted({(service(s), s.name) for s in in_trace(exporter, trace_id)})
            raise AssertionError(f"missing {want}; the trace has {got}")
        time.sleep(0.1)


@pytest.mark.timeout(300)
def test_one_trace_follows_a_board_match_through_boards_chat_and_notify(traced) -> None:
    stack, exporter = traced
    # A loop of its own in a thread (the browser tests keep one running in the main thread).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, story(stack, exporter)).result()


async def story(stack: InProcessStack, exporter: InMemorySpanExporter) -> None:
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=stack.url("auth"), timeout=10) as auth:
        writer = register_and_login(auth, f"w{tag}")
        applicant = register_and_login(auth, f"a{tag}")
    async with httpx.AsyncClient(base_url=stack.url("boards"), timeout=10) as boards:
        board = (await boards.post("/boards", json={"title": "duo"}, headers=writer)).json()
        room = (await boards.post(f"/boards/{board['id']}/apply", headers=applicant)).json()
        room_id = room["roomId"]

        ws = stack.url("chat").replace("http://", "ws://") + "/ws-stomp"
        a = await StompClient.open(ws, applicant["Authorization"].removeprefix("Bearer "))
        await a.subscribe(room_id)
        receipt = await a.send(room_id, "hello")
        assert receipt is not None
        await asyncio.wait_for(receipt, 10)

        # The SEND's trace: chat asked boards about the room, stored the message, and notify
        # handled its event (the writer is away: a message alarm).
        (send,) = [s for s in exporter.get_finished_spans() if s.name == "SEND /pub/chat/message"]
        assert service(send) == "chat" and send.kind is SpanKind.SERVER
        await asyncio.to_thread(
            wait_for, exporter, send.context.trace_id, {("notify", "chat.message.sent process")}
        )

        # A client that sends its own traceparent has chat continue that trace.
        client_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        await a.send_frame(
            "SEND",
            {
                "destination": "/pub/chat/message",
                "traceparent": f"00-{client_trace}-00f067aa0ba902b7-01",
            },
            json.dumps({"type": "TALK", "roomId": room_id, "message": "traced"}).encode(),
        )
        await asyncio.to_thread(
            wait_for, exporter, int(client_trace, 16), {("chat", "SEND /pub/chat/message")}
        )

        matched = await boards.post(
            f"/boards/{board['id']}/match", json={"roomId": room_id}, headers=writer
        )
        assert matched.status_code == 200, matched.text
        system = (await collect(a, 1, kind="SYSTEM"))[0]
        assert system["roomId"] == room_id
        await a.close()

    (match,) = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "POST /boards/{board_id}/match" and s.kind is SpanKind.SERVER
    ]
    assert service(match) == "boards"
    await asyncio.to_thread(
        wait_for,
        exporter,
        match.context.trace_id,
        {
            ("boards", "POST /boards/{board_id}/match"),
            # chat read board.matched and wrote the SYSTEM line in this trace...
            ("chat", "board.matched process"),
            # ...and the line's own event, out of chat's writer, is still in it;
            ("notify", "chat.message.sent process"),
            # notify made the matched alarm from the board event.
            ("notify", "board.matched process"),
        },
    )
    spans = in_trace(exporter, match.context.trace_id)
    assert {service(s) for s in spans} >= {"boards", "chat", "notify"}
    (chat_consumer,) = [
        s for s in spans if (service(s), s.name) == ("chat", "board.matched process")
    ]
    assert chat_consumer.kind is SpanKind.CONSUMER
    assert chat_consumer.parent is not None  # continued from the event, not a trace of its own
    with httpx.Client(base_url=stack.url("notify"), timeout=10) as notify:
        alarms = notify.get("/notify/alarms", headers=applicant).json()["items"]
    assert [a["kind"] for a in alarms if a["roomId"] == room_id] == ["matched"]
