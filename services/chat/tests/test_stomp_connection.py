"""The connection state machine: negotiation, limits, timers, and fuzzed frame sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from duochat_chat.stomp import (
    Connect,
    Disconnect,
    Failed,
    Frame,
    FrameParser,
    Limits,
    Receipt,
    Send,
    State,
    StompConnection,
    Subscribe,
    Unsubscribe,
    encode,
)
from duochat_chat.stomp.connection import negotiate_version
from duochat_chat.stomp.frames import SERVER_COMMANDS

LIMITS = Limits(sends_per_second=5, send_burst=5, max_subscriptions=3, connect_timeout_s=2)


def frame(command: str, *headers: tuple[str, str], body: bytes = b"") -> bytes:
    return encode(Frame(command, list(headers), body))


def server_frames(text: str) -> list[Frame]:
    parser = FrameParser(commands=SERVER_COMMANDS)
    return parser.feed(text.encode())


def connected(limits: Limits = LIMITS, extra: dict[str, str] | None = None) -> StompConnection:
    conn = StompConnection(limits, now=0.0)
    hdrs = {"accept-version": "1.2", "token": "t", **(extra or {})}
    events = conn.feed(frame("CONNECT", *hdrs.items()), 0.0)
    assert isinstance(events[0], Connect)
    conn.connected("alice")
    return conn


def test_connect_negotiates_version_heartbeats_and_token() -> None:
    conn = StompConnection(LIMITS, now=0.0)
    (event,) = conn.feed(
        frame(
            "CONNECT",
            ("accept-version", "1.0,1.1,1.2"),
            ("heart-beat", "4000,20000"),
            ("token", "abc"),
        ),
        0.0,
    )
    assert event == Connect(
        {"accept-version": "1.0,1.1,1.2", "heart-beat": "4000,20000", "token": "abc"}, "abc", "1.2"
    )
    (reply,) = server_frames(conn.connected("alice"))
    assert reply.command == "CONNECTED"
    assert reply.get("version") == "1.2"
    assert reply.get("user-name") == "alice"
    assert reply.get("heart-beat") == "10000,10000"
    assert conn.send_every == 20.0  # max(our 10 s, the client's wish of 20 s)
    assert conn.expect_every == 10.0  # max(the client's 4 s, our 10 s)


def test_bearer_header_and_stomp_command_are_accepted() -> None:
    conn = StompConnection(LIMITS, now=0.0)
    (event,) = conn.feed(frame("STOMP", ("Authorization", "Bearer xyz")), 0.0)
    assert isinstance(event, Connect)
    assert event.token == "xyz"
    assert event.version == "1.0"  # no accept-version header means 1.0


def test_version_negotiation() -> None:
    assert negotiate_version("1.1,1.2") == "1.2"
    assert negotiate_version("1.1,1.2", "v11.stomp") == "1.1"
    assert negotiate_version("1.0", "v12.stomp") == "1.0"
    assert negotiate_version("2.0") is None
    conn = StompConnection(LIMITS, now=0.0)
    (event,) = conn.feed(frame("CONNECT", ("accept-version", "2.0")), 0.0)
    assert isinstance(event, Failed)
    assert "supported protocol versions" in event.message
    assert server_frames(event.frame)[0].get("version") == "1.2,1.1,1.0"


def test_frames_before_connect_fail() -> None:
    conn = StompConnection(LIMITS, now=0.0)
    (event,) = conn.feed(frame("SEND", ("destination", "/x"), ("receipt", "r1")), 0.0)
    assert isinstance(event, Failed)
    error = server_frames(event.frame)[0]
    assert error.command == "ERROR"
    assert error.get("receipt-id") == "r1"
    assert "expected CONNECT" in (error.get("message") or "")
    assert conn.closed
    assert conn.feed(frame("CONNECT"), 0.1) == []  # nothing after an ERROR


def test_subscribe_unsubscribe_and_their_limits() -> None:
    conn = connected()
    events = conn.feed(
        frame("SUBSCRIBE", ("id", "1"), ("destination", "/a"), ("receipt", "r"))
        + frame("SUBSCRIBE", ("id", "2"), ("destination", "/b"))
        + frame("UNSUBSCRIBE", ("id", "1")),
        0.1,
    )
    assert events == [
        Subscribe("1", "/a", {"id": "1", "destination": "/a", "receipt": "r"}, "r"),
        Subscribe("2", "/b", {"id": "2", "destination": "/b"}, None),
        Unsubscribe("1", "/a", None),
    ]
    (dup,) = conn.feed(frame("SUBSCRIBE", ("id", "2"), ("destination", "/c")), 0.2)
    assert isinstance(dup, Failed)
    assert "already in use" in dup.message

    conn = connected()
    data = b"".join(frame("SUBSCRIBE", ("id", str(i)), ("destination", "/d")) for i in range(4))
    events = conn.feed(data, 0.1)
    assert [type(e) for e in events] == [Subscribe, Subscribe, Subscribe, Failed]
    assert "too many subscriptions" in events[-1].message  # type: ignore[union-attr]


def test_send_rate_limit_refills_over_time() -> None:
    conn = connected()
    send = frame("SEND", ("destination", "/pub/chat/message"), body=b"{}")
    for i in range(5):
        assert isinstance(conn.feed(send, 1.0)[0], Send), i
    (event,) = conn.feed(send, 1.0)
    assert isinstance(event, Failed)
    assert "too many messages" in event.message

    conn = connected()
    for i in range(20):  # 5 per second, sent at 4 per second: never limited
        assert isinstance(conn.feed(send, 1.0 + i * 0.25)[0], Send), i


def test_missing_headers_transactions_ack_and_disconnect() -> None:
    conn = connected()
    (event,) = conn.feed(frame("SEND"), 0.1)
    assert isinstance(event, Failed)
    assert "destination" in event.message
    conn = connected()
    (event,) = conn.feed(frame("BEGIN", ("transaction", "t")), 0.1)
    assert isinstance(event, Failed)
    conn = connected()
    events = conn.feed(frame("ACK", ("id", "1"), ("receipt", "a")) + frame("ACK", ("id", "2")), 0.1)
    assert events == [Receipt("a")]
    assert conn.feed(frame("DISCONNECT", ("receipt", "bye")), 0.1) == [Disconnect("bye")]
    (reply,) = server_frames(conn.receipt("bye"))
    assert reply.command == "RECEIPT"
    assert reply.get("receipt-id") == "bye"


def test_tick_times_out_unauthenticated_connections() -> None:
    conn = StompConnection(LIMITS, now=0.0)
    assert conn.tick(1.0) is None
    error = conn.tick(2.5)
    assert error is not None
    assert "no successful CONNECT" in (server_frames(error)[0].get("message") or "")
    assert conn.state is State.CLOSED


def test_tick_sends_heartbeats_and_detects_silence() -> None:
    conn = connected(extra={"heart-beat": "10000,10000"})
    assert conn.tick(5.0) is None
    assert conn.tick(9.5) == "\n"
    conn.feed(b"\n", 20.0)  # the client's heart-beat
    assert conn.tick(30.0) == "\n"
    error = conn.tick(46.0)  # 26 s of silence > 2.5 x 10 s
    assert error is not None
    assert "heart-beat" in (server_frames(error)[0].get("message") or "")


def test_message_frame_is_parseable_and_escapes_when_needed() -> None:
    conn = connected()
    body = '{"message":"héllo"}'
    text = conn.message("sub:1", "/sub/chat/room/r", "7", body, len(body.encode()))
    parser = FrameParser(commands=SERVER_COMMANDS)
    (msg,) = parser.feed(text.encode())
    assert msg.get("subscription") == "sub:1"
    assert msg.body == body.encode()
    text = conn.message("s1", "/sub/chat/room/r", "7", body, len(body.encode()))
    assert FrameParser(commands=SERVER_COMMANDS).feed(text.encode())[0].body == body.encode()


client_frames = st.one_of(
    st.builds(
        lambda cmd, hdrs, body: frame(cmd, *hdrs, body=body),
        st.sampled_from(
            [
                "CONNECT",
                "STOMP",
                "SEND",
                "SUBSCRIBE",
                "UNSUBSCRIBE",
                "ACK",
                "NACK",
                "BEGIN",
                "DISCONNECT",
            ]
        ),
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "id",
                        "destination",
                        "receipt",
                        "accept-version",
                        "heart-beat",
                        "token",
                        "content-type",
                        "x",
                    ]
                ),
                st.sampled_from(["1", "2", "/a", "1.2", "1.0,1.1", "0,0", "5,x", "", "v"]),
            ),
            max_size=5,
        ),
        st.binary(max_size=50),
    ),
    st.binary(max_size=40),
    st.just(b"\n"),
)


@settings(max_examples=400)
@given(chunks=st.lists(client_frames, max_size=12), accept=st.booleans())
def test_random_frame_sequences_never_break_the_state_machine(
    chunks: list[bytes], accept: bool
) -> None:
    conn = StompConnection(LIMITS, now=0.0)
    now = 0.0
    failed = False
    for chunk in chunks:
        now += 0.05
        events = conn.feed(chunk, now)
        if failed:
            assert events == []  # nothing is processed after an ERROR
        for event in events:
            assert not failed, "no event may follow a Failed"
            if isinstance(event, Failed):
                failed = True
                (error,) = server_frames(event.frame)
                assert error.command == "ERROR"
                assert error.get("message")
            elif isinstance(event, Connect):
                if accept:
                    assert server_frames(conn.connected("u"))[0].command == "CONNECTED"
                else:
                    conn.error("bad token")
                    failed = True
        assert len(conn.subscriptions) <= LIMITS.max_subscriptions
        tick = conn.tick(now)
        if tick is not None and tick != "\n":
            assert server_frames(tick)[0].command == "ERROR"
            failed = True
        assert failed == conn.closed


def test_hand_built_message_sent_event_reads_back_with_the_schema() -> None:
    from duochat_chat.drafts import Draft, message_sent_event
    from duochat_chat.presence import Here
    from duochat_chat.rooms import OwnedRoom
    from duochat_common.events.envelope import Envelope
    from duochat_common.events.schemas import ChatMessageSent

    room = OwnedRoom("room-1", 1, "w", 2, "a", "open", 6)
    draft = Draft("room-1", "TALK", 1, "w", 'hello "there" ✓')
    here = Here({2: "a"}, frozenset(["chat0"]))
    raw = message_sent_event(draft, room, 7, "w", here, "2026-01-02T03:04:05.678Z")
    envelope = Envelope.from_json(raw)
    event = ChatMessageSent.parse(envelope)
    assert envelope.type == "chat.message.sent" and envelope.version == 1
    assert (event.message_id, event.room_id, event.type, event.preview) == (
        7,
        "room-1",
        "TALK",
        'hello "there" ✓',
    )
    assert event.sender.username == "w"
    assert [(r.id, r.username, r.in_room) for r in event.recipients] == [(2, "a", True)]
    assert event.created_at.isoformat().startswith("2026-01-02T03:04:05.678")
