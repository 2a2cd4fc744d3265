"""ChunkQueue hands out the next bytes as views of the chunks they arrived in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pingthings.timeseries.transport.chunk_queue import ChunkQueue


@given(
    chunks=st.lists(st.binary(min_size=0, max_size=50), max_size=12),
    takes=st.lists(st.integers(1, 70), max_size=20),
)
def test_taking_returns_the_stream_in_order(chunks: list[bytes], takes: list[int]) -> None:
    queue = ChunkQueue()
    for chunk in chunks:
        queue.append(memoryview(chunk))
    stream = b"".join(chunks)
    assert queue.size == len(stream)
    pos = 0
    for want in takes:
        want = min(want, queue.size)
        if not want:
            break
        assert queue.peek(want) == stream[pos : pos + want]
        views = queue.take(want)
        assert b"".join(views) == stream[pos : pos + want]
        assert all(len(v) for v in views)
        pos += want
        assert queue.size == len(stream) - pos


def test_a_piece_inside_one_chunk_is_a_single_view_of_it() -> None:
    first, second = b"abcdef", b"ghij"
    queue = ChunkQueue()
    queue.extend([memoryview(first), memoryview(second)])
    (view,) = queue.take(4)
    assert view.obj is first and bytes(view) == b"abcd"
    across = queue.take(4)
    assert [bytes(v) for v in across] == [b"ef", b"gh"]
    assert queue.peek(10) == b"ij"
