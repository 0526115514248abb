"""The frame codec: round trips, the specification's edge cases, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duochat_chat.stomp.frames import (
    CLIENT_COMMANDS,
    Frame,
    FrameParser,
    ProtocolError,
    encode,
    escape,
    unescape,
)

COMMANDS = sorted(CLIENT_COMMANDS - {"CONNECT", "STOMP"})
header_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40
)
header_name = header_text.filter(lambda s: s != "content-length")


def split_points(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


def test_parses_a_simple_frame_with_crlf_and_heartbeats() -> None:
    parser = FrameParser()
    frames = parser.feed(b"\n\r\nSEND\r\ndestination:/pub/x\r\n\r\nhello\x00\n")
    assert frames == [Frame("SEND", [("destination", "/pub/x")], b"hello")]
    assert parser.heartbeats == 3


def test_content_length_allows_nul_in_the_body() -> None:
    frames = FrameParser().feed(b"SEND\ncontent-length:3\n\na\x00b\x00")
    assert frames[0].body == b"a\x00b"


def test_repeated_header_first_value_wins() -> None:
    frame = FrameParser().feed(b"SEND\nfoo:1\nfoo:2\n\n\x00")[0]
    assert frame.get("foo") == "1"


def test_escapes_follow_the_version() -> None:
    assert unescape("a\\cb\\nc\\\\d\\re", "1.2") == "a:b\nc\\d\re"
    assert unescape("a\\cb", "1.0") == "a\\cb"
    with pytest.raises(ProtocolError):
        unescape("a\\rb", "1.1")  # \r is a 1.2 escape only
    with pytest.raises(ProtocolError):
        unescape("a\\tb", "1.2")  # undefined escapes are fatal
    with pytest.raises(ProtocolError):
        unescape("trailing\\", "1.2")


def test_connect_headers_are_not_unescaped() -> None:
    frame = FrameParser().feed(b"CONNECT\nlogin:a\\cb\n\n\x00")[0]
    assert frame.get("login") == "a\\cb"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HELLO\n\n\x00", "unknown command"),
        (b"SEND\nno-colon\n\n\x00", "no colon"),
        (b"SEND\ncontent-length:x\n\n\x00", "content-length"),
        (b"SEND\ncontent-length:-1\n\n\x00", "content-length"),
        (b"SEND\ncontent-length:1\n\nab\x00", "longer than its content-length"),
        (b"SEND\xff\n\n\x00", "UTF-8"),
        (b"SEND\x00", "before its headers"),
        (b"SEND\x00\n\n", "unknown command .SEND?"),
    ],
)
def test_malformed_frames_raise_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        FrameParser().feed(data)


def test_oversized_frames_are_refused_before_they_are_buffered_whole() -> None:
    parser = FrameParser(max_frame_bytes=1024)
    with pytest.raises(ProtocolError, match="larger than 1024"):
        parser.feed(b"SEND\ndestination:/x\n\n" + b"a" * 2000)
    with pytest.raises(ProtocolError, match="larger than 1024"):
        FrameParser(max_frame_bytes=1024).feed(b"SEND\ncontent-length:5000\n\n")
    with pytest.raises(ProtocolError, match="larger than 1024"):
        FrameParser(max_frame_bytes=1024).feed(b"SEND\nx:" + b"y" * 2000)


def test_too_many_headers() -> None:
    data = b"SEND\n" + b"".join(b"h%d:v\n" % i for i in range(40)) + b"\n\x00"
    with pytest.raises(ProtocolError, match="headers"):
        FrameParser(max_headers=32).feed(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    command=st.sampled_from(COMMANDS),
    headers=st.lists(st.tuples(header_name, header_text), max_size=6),
    body=st.binary(max_size=300),
    version=st.sampled_from(["1.1", "1.2"]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
    crlf=st.booleans(),
)
def test_round_trip_in_any_split(
    command: str,
    headers: list[tuple[str, str]],
    body: bytes,
    version: str,
    cuts: list[int],
    crlf: bool,
) -> None:
    if version == "1.1":
        headers = [(k.replace("\r", ""), v.replace("\r", "")) for k, v in headers]
    frame = Frame(command, headers, body)
    data = encode(frame, version, content_length=True)
    if crlf:
        data = b"\r\n" + data + b"\r\n"
    parser = FrameParser(max_frame_bytes=1 << 20)
    parser.version = version
    out: list[Frame] = []
    for chunk in split_points(data * 2, cuts):
        out.extend(parser.feed(chunk))
    expected_headers = list(headers)
    if body:
        expected_headers.append(("content-length", str(len(body))))
    assert out == [Frame(command, expected_headers, body)] * 2


@settings(max_examples=500)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 1000), max_size=5))
def test_random_bytes_parse_or_raise_protocol_error(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser(max_frame_bytes=512)
    try:
        for chunk in split_points(data, cuts):
            for frame in parser.feed(chunk):
                assert frame.command in CLIENT_COMMANDS
    except ProtocolError:
        pass
    assert len(parser._buf) <= 512


@settings(max_examples=300)
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from([*COMMANDS, "CONNECT", "", "content-length:3", "a:b", "x\\c:y"]),
            st.text(max_size=20),
        ),
        max_size=8,
    ),
    tail=st.sampled_from(["\x00", "", "\n\x00", "abc\x00", "\x00\x00"]),
)
def test_almost_valid_frames_parse_or_raise_protocol_error(lines: list[str], tail: str) -> None:
    data = ("\n".join(lines) + "\n\n" + tail).encode("utf-8", "surrogatepass")
    try:
        FrameParser(max_frame_bytes=4096).feed(data)
    except ProtocolError:
        pass


@given(value=header_text, version=st.sampled_from(["1.1", "1.2"]))
def test_escape_unescape_inverse(value: str, version: str) -> None:
    if version == "1.1":
        value = value.replace("\r", "")
    assert unescape(escape(value, version), version) == value
