"""gRPC message framing: reassembly from arbitrary splits, prefix errors, size limit."""

from __future__ import annotations

import random

import pytest

from pingthings.timeseries.transport.framing import PREFIX, FramingError, MessageReader, frame_message


def _messages(rng: random.Random, count: int) -> list[bytes]:
    sizes = [rng.choice([0, 1, 4, 5, 6, 100, 16_384, 70_000]) for _ in range(count)]
    return [rng.randbytes(size) for size in sizes]


@pytest.mark.parametrize("seed", range(20))
def test_reassembles_messages_from_random_splits(seed: int) -> None:
    rng = random.Random(seed)
    messages = _messages(rng, 30)
    wire = b"".join(frame_message(m) for m in messages)
    cuts = sorted(rng.sample(range(1, len(wire)), min(60, len(wire) - 1)))
    reader = MessageReader(1 << 20)
    got: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        got.extend(bytes(m) for m in reader.feed(wire[start:end]))
    assert got == messages
    assert not reader.partial


def test_whole_messages_inside_one_chunk_are_views_without_copies() -> None:
    wire = frame_message(b"abc") + frame_message(b"defgh")
    out = MessageReader(100).feed(wire)
    assert [bytes(m) for m in out] == [b"abc", b"defgh"]
    assert all(isinstance(m, memoryview) and m.obj is wire for m in out)


def test_partial_message_is_reported() -> None:
    reader = MessageReader(100)
    assert reader.feed(frame_message(b"hello")[:-1]) == []
    assert reader.partial


def test_compressed_flag_is_rejected() -> None:
    with pytest.raises(FramingError, match="compressed"):
        MessageReader(100).feed(PREFIX.pack(1, 3) + b"abc")


def test_invalid_flag_is_rejected() -> None:
    with pytest.raises(FramingError, match="flag"):
        MessageReader(100).feed(PREFIX.pack(7, 0))


def test_message_above_limit_is_rejected_before_buffering() -> None:
    with pytest.raises(FramingError, match="above the limit"):
        MessageReader(10).feed(PREFIX.pack(0, 11))


def test_one_whole_message_comes_back_as_a_view_of_the_received_bytes() -> None:
    received = frame_message(b"reply")
    out = MessageReader(1 << 20).feed(received)
    assert len(out) == 1 and isinstance(out[0], memoryview)
    assert out[0].obj is received and bytes(out[0]) == b"reply"


def test_the_size_limit_holds_for_a_whole_message_too() -> None:
    with pytest.raises(FramingError, match="above the limit"):
        MessageReader(4).feed(frame_message(b"12345"))
