"""ZeroCopyFrameBuffer cuts received bytes into the same frames as h2's own buffer, however they arrive."""

from __future__ import annotations

import itertools
from typing import Any

import h2.frame_buffer
import pytest
from h2.exceptions import FrameTooLargeError, ProtocolError
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame, PingFrame, SettingsFrame
from hypothesis import given
from hypothesis import strategies as st

from pingthings.timeseries.transport.frame_buffer import QuietDataFrame, SplitBody, ZeroCopyFrameBuffer
from pingthings.timeseries.transport.framing import PREFIX, MessageReader


def _body(frame: Any) -> bytes:
    """A frame's body for comparison: DATA/HEADERS/CONTINUATION payload, else the serialised frame."""
    data = getattr(frame, "data", None)
    if data is None:
        return frame.serialize()
    return data.tobytes() if isinstance(data, SplitBody) else bytes(data)


def _describe(frames: list[Any]) -> list[tuple[Any, ...]]:
    return [(type(f).__name__.replace("Quiet", ""), f.stream_id, sorted(f.flags), _body(f)) for f in frames]


def _wire(rng_bytes: bytes, sizes: list[int], padded: list[bool]) -> bytes:
    """HEADERS split over a CONTINUATION, DATA frames (some padded, one empty), a PING and SETTINGS."""
    out = SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: 1 << 20}).serialize()
    headers = HeadersFrame(1, data=b"\x88" * 40)
    out += headers.serialize()
    out += ContinuationFrame(1, data=b"\x82" * 10, flags=["END_HEADERS"]).serialize()
    pos = 0
    for size, pad in zip(sizes, padded, strict=True):
        frame = DataFrame(1, data=rng_bytes[pos : pos + size])
        if pad:
            frame.flags.add("PADDED")
            frame.pad_length = 7
        out += frame.serialize()
        pos += size
    out += PingFrame(0, opaque_data=b"12345678").serialize()
    out += DataFrame(1, data=b"", flags=["END_STREAM"]).serialize()
    return out


def _fresh(max_frame_size: int = 1 << 20) -> ZeroCopyFrameBuffer:
    buffer = ZeroCopyFrameBuffer()
    buffer.max_frame_size = max_frame_size  # h2 sets it from its settings before every receive
    return buffer


def _drain(buffer: Any) -> list[Any]:
    return list(buffer)


@given(
    sizes=st.lists(st.integers(0, 70_000), min_size=1, max_size=8),
    padded=st.lists(st.booleans(), min_size=8, max_size=8),
    cuts=st.lists(st.integers(0, 600_000), max_size=30),
)
def test_frames_match_h2s_buffer_for_any_split_of_the_bytes(
    sizes: list[int], padded: list[bool], cuts: list[int]
) -> None:
    payload = bytes(range(256)) * (sum(sizes) // 256 + 1)
    wire = _wire(payload, sizes, padded[: len(sizes)])
    stock = h2.frame_buffer.FrameBuffer(server=False)
    stock.max_frame_size = 1 << 20
    stock.add_data(wire)
    expected = _describe(_drain(stock))

    ours = _fresh()
    got: list[Any] = []
    edges = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    for a, b in itertools.pairwise(edges):
        ours.add_data(wire[a:b])
        got += _drain(ours)
    assert _describe(got) == expected
    assert all(type(f) is QuietDataFrame for f in got if isinstance(f, DataFrame))
    assert ours._queue.size == 0  # everything consumed


def test_an_unpadded_data_frame_inside_one_receive_is_a_view_of_it() -> None:
    received = DataFrame(3, data=b"x" * 5000).serialize()
    buffer = _fresh()
    buffer.add_data(received)
    (frame,) = _drain(buffer)
    assert isinstance(frame.data, memoryview) and frame.data.obj is received
    assert frame.flow_controlled_length == 5000


def test_a_data_frame_across_receives_is_a_split_body_of_views() -> None:
    wire = DataFrame(3, data=bytes(range(200)) * 100).serialize()
    first, second, third = wire[:5000], wire[5000:12000], wire[12000:]
    buffer = _fresh()
    for part in (first, second):
        buffer.add_data(part)
        assert _drain(buffer) == []
    buffer.add_data(third)
    (frame,) = _drain(buffer)
    assert isinstance(frame.data, SplitBody) and len(frame.data) == 20_000
    assert [v.obj for v in frame.data.views] == [first, second, third]
    assert frame.data.tobytes() == bytes(range(200)) * 100


def test_oversized_and_malformed_frames_are_protocol_errors() -> None:
    buffer = _fresh(16_384)
    buffer.add_data(DataFrame(1, data=b"y" * 20_000).serialize())
    with pytest.raises(FrameTooLargeError):
        _drain(buffer)
    bad = _fresh()
    bad.add_data(b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + b"1234")  # PING on stream 1, short body
    bad.add_data(b"5678")
    with pytest.raises(ProtocolError):
        _drain(bad)


def test_message_reader_joins_a_message_from_split_bodies_once() -> None:
    message = bytes(range(256)) * 1000
    wire = PREFIX.pack(0, len(message)) + message
    views = [memoryview(wire)[a : a + 40_000] for a in range(0, len(wire), 40_000)]
    reader = MessageReader(1 << 24)
    out = reader.feed(SplitBody(views[:3], sum(len(v) for v in views[:3])))
    assert out == []
    out = reader.feed(SplitBody(views[3:], sum(len(v) for v in views[3:])))
    assert [bytes(m) for m in out] == [message]
    assert not reader.partial
