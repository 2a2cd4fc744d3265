"""ArrowMultiValues' per-stream read-ahead: streams decode in parallel, one chunk ahead, and close."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import numpy as np
import pyarrow as pa
import pytest

import pingthings.timeseries as pt
from pingthings.server import Server
from pingthings.server.service.read_ahead import ReadAhead, start_reads
from pingthings.server.service.read_gate import ReadGate

# The handlers run under grpclib, which only ever runs on asyncio.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
#: Seconds a worker waits for its partner before the test calls the reads sequential.
MEET_TIMEOUT = 20.0


class MeetingChunks(Iterator[int]):
    """Chunks 0, 1, 2; producing chunk 0 waits until every reader sharing ``barrier`` is at it too."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier
        self.started: list[threading.Event] = [threading.Event() for _ in range(4)]
        self.calls = 0
        self.closed = False

    def __next__(self) -> int:
        k = self.calls
        self.calls += 1
        self.started[min(k, 3)].set()
        if k == 0:
            self.barrier.wait(MEET_TIMEOUT)  # BrokenBarrierError if the partner never comes
        if k >= 3:
            raise StopIteration
        return k

    def close(self) -> None:
        self.closed = True


@asyncio_only
@pytest.mark.anyio
async def test_started_streams_compute_their_first_chunks_at_the_same_time() -> None:
    barrier = threading.Barrier(2)
    sources = [MeetingChunks(barrier), MeetingChunks(barrier)]
    readers = [ReadAhead(s, ReadGate(2)) for s in sources]
    start_reads(readers)  # both first chunks are under way before either is awaited
    assert [await anext(r) for r in readers] == [0, 0]
    for r in readers:
        await r.aclose()
    assert all(s.closed for s in sources)


@asyncio_only
@pytest.mark.anyio
async def test_the_next_chunk_is_computed_while_the_caller_holds_this_one() -> None:
    source = MeetingChunks(threading.Barrier(1))
    reader = ReadAhead(source)
    assert await anext(reader) == 0
    # Nobody asked for chunk 1 yet, but it is being computed.
    assert await anyio.to_thread.run_sync(source.started[1].wait, MEET_TIMEOUT)
    assert [chunk async for chunk in reader] == [1, 2]
    await reader.aclose()
    assert source.closed and source.calls == 4


@asyncio_only
@pytest.mark.anyio
async def test_a_failing_chunk_is_raised_where_it_happened_and_the_reader_still_closes() -> None:
    class Failing(Iterator[int]):
        closed = False

        def __next__(self) -> int:
            raise ValueError("broken block")

        def close(self) -> None:
            self.closed = True

    source = Failing()
    reader = ReadAhead(source)
    with pytest.raises(ValueError, match="broken block"):
        await anext(reader)
    await reader.aclose()
    assert source.closed


def test_a_cold_multi_stream_read_joins_every_stream(tmp_path: Path) -> None:
    # Each stream holds hundreds of blocks, only the last few of which the insert leaves cached:
    # every stream goes through the worker-thread read-ahead.
    n, k = 120_000, 5
    t = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 8_333_333
    with Server(tmp_path, listen="127.0.0.1:0") as srv:
        conn = pt.connect(endpoint=srv.endpoint)
        streams = [conn.create(uuid.uuid4(), "cold/join", {"name": f"s{i}"}) for i in range(k)]
        for i, s in enumerate(streams):
            s.insert((t[i :: 1 + i % 2], np.full(t[i :: 1 + i % 2].size, float(i))))
        srv.runtime.engine._reader.cache.clear()
        sset = conn.streamset_from_uuids([s.uuid for s in streams])
        table = sset.raw_values_aligned(int(t[0]), int(t[-1]) + 1)
        conn.close()
    times = table.column("time").combine_chunks().view(pa.int64()).to_numpy()
    np.testing.assert_array_equal(times, t)
    for i, s in enumerate(streams):
        column = table.column(str(s.uuid)).to_numpy()
        expected = np.full(n, np.nan)
        expected[i :: 1 + i % 2] = float(i)
        np.testing.assert_array_equal(column, expected)
