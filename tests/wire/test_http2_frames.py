"""The sans-IO frame layer: builders checked against hyperframe, the reader against hand-made bytes."""

from __future__ import annotations

import pytest
from hyperframe.frame import Frame as OracleFrame
from hypothesis import given
from hypothesis import strategies as st

from pingthings.wire.http2 import frames as f
from pingthings.wire.http2.frames import ConnectionProtocolError, ErrorCode, FrameReader


def _oracle(raw: bytes) -> OracleFrame:
    frame, length = OracleFrame.parse_frame_header(memoryview(raw[:9]))
    frame.parse_body(memoryview(raw[9 : 9 + length]))
    return frame


def _read_all(raw: bytes, chunk: int | None = None, **limits: int) -> list[f.Frame]:
    reader = FrameReader(**limits)
    out: list[f.Frame] = []
    step = chunk or max(len(raw), 1)
    for start in range(0, len(raw), step):
        reader.feed(raw[start : start + step])
        out.extend(reader)
    return out


def test_builders_parse_back_with_hyperframe() -> None:
    settings = _oracle(f.settings_frame({f.INITIAL_WINDOW_SIZE: 1 << 20, f.MAX_CONCURRENT_STREAMS: 7}))
    assert settings.type == f.SETTINGS and dict(settings.settings) == {4: 1 << 20, 3: 7}
    assert "ACK" in _oracle(f.settings_ack()).flags
    update = _oracle(f.window_update(3, 1000))
    assert (update.type, update.stream_id, update.window_increment) == (f.WINDOW_UPDATE, 3, 1000)
    pong = _oracle(f.ping(b"12345678", ack=True))
    assert pong.opaque_data == b"12345678" and "ACK" in pong.flags
    reset = _oracle(f.rst_stream(5, ErrorCode.CANCEL))
    assert (reset.stream_id, reset.error_code) == (5, 8)
    away = _oracle(f.goaway(9, ErrorCode.PROTOCOL_ERROR, b"why"))
    assert (away.last_stream_id, away.error_code, away.additional_data) == (9, 1, b"why")
    header = f.data_header(7, 3, end_stream=True)
    data = _oracle(header + b"abc")
    assert (len(header), data.stream_id, data.data, "END_STREAM" in data.flags) == (9, 7, b"abc", True)


def test_window_update_and_ping_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="increment"):
        f.window_update(0, 0)
    with pytest.raises(ValueError, match="8 bytes"):
        f.ping(b"short", ack=False)


def test_long_header_block_is_split_into_continuations_and_joined_back() -> None:
    block = bytes(range(256)) * 100
    pieces = f.headers_frames(1, block, end_stream=True, max_frame=f.DEFAULT_MAX_FRAME)
    assert len(pieces) == 2
    first, second = _oracle(pieces[0]), _oracle(pieces[1])
    assert first.type == f.HEADERS and "END_STREAM" in first.flags and "END_HEADERS" not in first.flags
    assert second.type == f.CONTINUATION and "END_HEADERS" in second.flags
    (frame,) = _read_all(b"".join(pieces), chunk=1000)
    assert frame == (f.HEADERS, f.END_STREAM | f.END_HEADERS, 1, block)


@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(1, 5000))
def test_data_frames_survive_any_chunking(bodies: list[bytes], chunk: int) -> None:
    raw = b"".join(f.data_header(1, len(b), end_stream=False) + b for b in bodies)
    frames = _read_all(raw, chunk=chunk)
    assert [bytes(fr.payload) for fr in frames] == bodies
    assert all(fr.type == f.DATA and fr.stream_id == 1 for fr in frames)


def test_a_frame_within_one_chunk_is_a_view_not_a_copy() -> None:
    chunk = f.data_header(1, 5, end_stream=True) + b"hello"
    reader = FrameReader()
    reader.feed(chunk)
    frame = reader.next_frame()
    assert frame is not None and isinstance(frame.payload, memoryview)
    assert frame.payload.obj is chunk


def test_padding_and_priority_are_stripped() -> None:
    padded = f.frame_header(1 + 3 + 4, f.DATA, f.PADDED | f.END_STREAM, 1) + b"\x04abc" + b"\0" * 4
    block = b"\x82"
    prio = f.frame_header(2 + 5 + len(block), f.HEADERS, f.PADDED | f.PRIORITY_FLAG | f.END_HEADERS, 3)
    prio += b"\x01" + b"\x00\x00\x00\x01\x10" + block + b"\0"
    reader = FrameReader()
    reader.feed(padded + prio)
    data = reader.next_frame()
    assert data is not None and bytes(data.payload) == b"abc" and data.flags == f.END_STREAM
    assert reader.last_padding == 5
    assert reader.next_frame() == (f.HEADERS, f.END_HEADERS, 3, block)


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (f.frame_header(20000, f.DATA, 0, 1), ErrorCode.FRAME_SIZE_ERROR, "maximum frame size"),
        (f.frame_header(0, f.DATA, 0, 0), ErrorCode.PROTOCOL_ERROR, "stream 0"),
        (f.frame_header(8, f.PING, 0, 1) + b"x" * 8, ErrorCode.PROTOCOL_ERROR, "belongs to stream 0"),
        (f.frame_header(3, f.PING, 0, 0) + b"xyz", ErrorCode.FRAME_SIZE_ERROR, "not 8"),
        (f.frame_header(5, f.SETTINGS, 0, 0) + b"x" * 5, ErrorCode.FRAME_SIZE_ERROR, "multiple of 6"),
        (f.frame_header(6, f.SETTINGS, f.ACK, 0) + b"x" * 6, ErrorCode.FRAME_SIZE_ERROR, "acknowledgement"),
        (f.frame_header(2, f.DATA, f.PADDED, 1) + b"\x05a", ErrorCode.PROTOCOL_ERROR, "padding"),
        (f.frame_header(1, f.CONTINUATION, f.END_HEADERS, 1) + b"\x82", ErrorCode.PROTOCOL_ERROR, "without"),
        (f.frame_header(4, f.GOAWAY, 0, 0) + b"\0" * 4, ErrorCode.FRAME_SIZE_ERROR, "GOAWAY"),
    ],
)
def test_malformed_frames_are_connection_errors(raw: bytes, code: ErrorCode, words: str) -> None:
    with pytest.raises(ConnectionProtocolError, match=words) as caught:
        _read_all(raw)
    assert caught.value.code == code


def test_continuation_rules() -> None:
    start = f.frame_header(1, f.HEADERS, 0, 1) + b"\x82"
    other_stream = f.frame_header(1, f.CONTINUATION, f.END_HEADERS, 3) + b"\x84"
    interleaved = f.frame_header(8, f.PING, 0, 0) + b"x" * 8
    for intruder in (other_stream, interleaved):
        with pytest.raises(ConnectionProtocolError, match="expected CONTINUATION") as caught:
            _read_all(start + intruder)
        assert caught.value.code == ErrorCode.PROTOCOL_ERROR
    too_long = f.frame_header(1, f.CONTINUATION, 0, 1) + b"\x84"
    with pytest.raises(ConnectionProtocolError, match="header block of more than 10") as caught:
        _read_all(start + too_long * 10, max_header_block=10)
    assert caught.value.code == ErrorCode.ENHANCE_YOUR_CALM


def test_unknown_frame_types_pass_through_for_the_caller_to_ignore() -> None:
    assert _read_all(f.frame_header(2, 0x42, 0, 5) + b"hi") == [(0x42, 0, 5, b"hi")]


def test_reader_holds_one_frame_at_most() -> None:
    reader = FrameReader()
    body = b"z" * 10000
    raw = f.data_header(1, len(body), end_stream=False) + body
    reader.feed(raw[:4000])
    assert reader.next_frame() is None and reader.buffered == 4000 - 9
    reader.feed(raw[4000:])
    frame = reader.next_frame()
    assert frame is not None and bytes(frame.payload) == body and reader.buffered == 0


def test_parse_settings_validates_values() -> None:
    pairs = f.parse_settings(f.settings_frame({f.MAX_FRAME_SIZE: 20000, f.ENABLE_PUSH: 0})[9:])
    assert pairs == [(f.MAX_FRAME_SIZE, 20000), (f.ENABLE_PUSH, 0)]
    bad = [
        ({f.INITIAL_WINDOW_SIZE: 2**31}, ErrorCode.FLOW_CONTROL_ERROR),
        ({f.MAX_FRAME_SIZE: 100}, ErrorCode.PROTOCOL_ERROR),
        ({f.MAX_FRAME_SIZE: 2**24}, ErrorCode.PROTOCOL_ERROR),
        ({f.ENABLE_PUSH: 2}, ErrorCode.PROTOCOL_ERROR),
    ]
    for settings, code in bad:
        with pytest.raises(ConnectionProtocolError) as caught:
            f.parse_settings(f.settings_frame(settings)[9:])
        assert caught.value.code == code


def test_small_payload_parsers() -> None:
    assert f.parse_window_update(b"\x80\x00\x00\x05") == 5
    assert f.parse_rst_stream(b"\x00\x00\x00\x08") == ErrorCode.CANCEL
    assert f.parse_goaway(f.goaway(3, 2, b"dbg")[9:]) == (3, 2, b"dbg")
    assert f.error_code(99) == 99 and f.error_code(1) is ErrorCode.PROTOCOL_ERROR


def _frame_bytes(kind: str, stream: int, body: bytes) -> bytes:
    """One frame (or HEADERS plus CONTINUATIONs) of a kind the reader may take by its fast path or not."""
    if kind == "data":
        return f.data_header(stream, len(body), end_stream=False) + body
    if kind == "padded-data":
        return f.frame_header(len(body) + 3, f.DATA, f.PADDED, stream) + b"\x02" + body + b"\0\0"
    if kind == "headers":
        return b"".join(f.headers_frames(stream, body, end_stream=True, max_frame=f.DEFAULT_MAX_FRAME))
    if kind == "split-headers":
        return b"".join(f.headers_frames(stream, body + b"x" * 40, end_stream=False, max_frame=16))
    if kind == "ping":
        return f.ping(b"8 bytes!", ack=False)
    return f.window_update(stream, len(body) + 1)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["data", "padded-data", "headers", "split-headers", "ping", "window"]),
            st.integers(1, 9),
            st.binary(max_size=200),
        ),
        max_size=10,
    ),
    st.integers(1, 300),
)
def test_frames_read_the_same_whole_or_in_any_chunks(
    frames: list[tuple[str, int, bytes]], chunk: int
) -> None:
    # Whole, most frames go through the reader's fast path; in small chunks, through the general one.
    raw = b"".join(_frame_bytes(kind, stream, body) for kind, stream, body in frames)
    whole = [(fr.type, fr.flags, fr.stream_id, bytes(fr.payload)) for fr in _read_all(raw)]
    chunked = [(fr.type, fr.flags, fr.stream_id, bytes(fr.payload)) for fr in _read_all(raw, chunk=chunk)]
    assert whole == chunked and len(whole) == len(frames)
    assert all(fr.flags & f.PADDED == 0 for fr in _read_all(raw))


def test_a_whole_header_block_over_the_limit_is_refused_on_the_fast_path_too() -> None:
    raw = b"".join(f.headers_frames(1, b"\x82" * 100, end_stream=True, max_frame=f.DEFAULT_MAX_FRAME))
    with pytest.raises(ConnectionProtocolError, match="header block") as caught:
        _read_all(raw, max_header_block=99)
    assert caught.value.code == ErrorCode.ENHANCE_YOUR_CALM
    assert _read_all(raw, max_header_block=100)[0].payload == b"\x82" * 100
