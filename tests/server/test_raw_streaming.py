"""The prefetching raw-read path: the worker-thread producer, in-place Arrow replies, many-message reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.service.arrow_reply import MULTI_ARROW_BYTES_FIELD, arrow_reply
from pingthings.server.service.arrow_rpcs import RAW_ROWS_PER_MESSAGE
from pingthings.server.service.points import POINTS_PER_MESSAGE
from pingthings.server.service.prefetch import prefetched
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import points
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT
from tests.server.helpers import create, insert, random_points
from tests.server.rawclient import RawClient

# ``prefetched`` serves grpclib's handlers, which only ever run on asyncio.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class Recorder:
    """An iterator over ``range(n)`` (or endless) recording the thread it ran in and its closing."""

    def __init__(self, n: int | None, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.produced = 0
        self.threads: set[int] = set()
        self.closed_in: int | None = None

    def __iter__(self) -> Recorder:
        return self

    def __next__(self) -> int:
        self.threads.add(threading.get_ident())
        if self.n is not None and self.produced >= self.n:
            raise StopIteration
        if self.produced == self.fail_at:
            raise ValueError(f"broken at {self.produced}")
        self.produced += 1
        return self.produced - 1

    def close(self) -> None:
        self.closed_in = threading.get_ident()


@asyncio_only
@pytest.mark.anyio
async def test_prefetched_yields_every_item_in_order_from_a_worker_thread() -> None:
    items = Recorder(50)
    got = [item async for item in prefetched(lambda: items, depth=3)]
    assert got == list(range(50))
    assert threading.get_ident() not in items.threads
    assert items.closed_in is not None and items.closed_in != threading.get_ident()


@asyncio_only
@pytest.mark.anyio
async def test_prefetched_stays_within_depth_of_the_consumer() -> None:
    depth = 2
    items = Recorder(40)
    taken = 0
    replies = prefetched(lambda: items, depth=depth)
    async for item in replies:
        assert item == taken
        taken += 1
        # items handed over but not yet taken, plus the one the worker may hold: at most depth + 1
        assert items.produced - taken <= depth + 1
    assert taken == 40


@asyncio_only
@pytest.mark.anyio
async def test_prefetched_raises_the_producers_error_after_the_items_before_it() -> None:
    items = Recorder(100, fail_at=7)
    got: list[int] = []
    with pytest.raises(ValueError, match="broken at 7"):
        async for item in prefetched(lambda: items):
            got.append(item)
    assert got == list(range(7))
    assert items.closed_in is not None


@asyncio_only
@pytest.mark.anyio
async def test_prefetched_stops_and_closes_the_producer_when_the_consumer_stops_early() -> None:
    items = Recorder(None)  # endless: only stopping can end it
    replies = prefetched(lambda: items, depth=2)
    async for item in replies:
        if item == 5:
            break
    await replies.aclose()
    assert items.closed_in is not None  # closed before aclose returned
    assert items.produced <= 5 + 1 + 3


@asyncio_only
@pytest.mark.anyio
async def test_prefetched_rejects_a_depth_below_one() -> None:
    with pytest.raises(ValueError, match="depth"):
        async for _ in prefetched(lambda: iter(()), depth=0):
            pass


@pytest.mark.parametrize("version", [0, 1, 300, 2**40])
@pytest.mark.parametrize("rows", [0, 1, 1000])
def test_arrow_reply_matches_the_protobuf_message(version: int, rows: int) -> None:
    rng = np.random.default_rng(rows)
    table = wire_arrow.raw_table(np.sort(rng.integers(0, 10**15, rows)), rng.normal(size=rows))
    expected = v5api.ArrowRawValuesResponse(version_major=version, arrow_bytes=wire_arrow.table_to_ipc(table))
    got = arrow_reply(version, table)
    assert got.to_pybytes() == bytes(expected)
    parsed = v5api.ArrowRawValuesResponse.parse(got.to_pybytes())
    assert parsed.version_major == version
    assert wire_arrow.ipc_to_table(parsed.arrow_bytes).equals(table)


@pytest.mark.parametrize("rows", [0, 500])
def test_arrow_reply_for_multi_values_matches_the_protobuf_message(rows: int) -> None:
    rng = np.random.default_rng(rows)
    table = wire_arrow.raw_table(np.arange(rows), rng.normal(size=rows))
    expected = v5api.ArrowMultiValuesResponse(arrow_bytes=wire_arrow.table_to_ipc(table))
    assert arrow_reply(0, table, MULTI_ARROW_BYTES_FIELD).to_pybytes() == bytes(expected)


@pytest.fixture
def client(server: Server) -> Iterator[RawClient]:
    with RawClient(server.endpoint) as c:
        yield c


def test_long_reads_come_in_bounded_messages_each_carrying_the_version(
    client: RawClient, unique_collection: str
) -> None:
    rng = np.random.default_rng(11)
    uu = create(client, unique_collection)
    n = 2 * RAW_ROWS_PER_MESSAGE + 123
    times, values = random_points(rng, n)
    version = insert(client, uu, times, values)
    order = np.argsort(times)

    arrow = client.stream(
        "ArrowRawValues", v5api.ArrowRawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1)
    )
    replies = [v5api.ArrowRawValuesResponse.parse(p) for p in arrow]
    assert all(r.stat is None and r.version_major == version for r in replies)
    parts = [wire_arrow.ipc_to_table(r.arrow_bytes) for r in replies]
    assert len(parts) >= 3 and all(0 < t.num_rows <= RAW_ROWS_PER_MESSAGE for t in parts)
    table = pa.concat_tables(parts)
    assert np.array_equal(table.column("time").cast(pa.int64()).to_numpy(), times[order])
    assert np.array_equal(table.column("value").to_numpy(), values[order])

    raw = client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1))
    decoded = [points.decode_raw_values(p) for p in raw]
    assert all(d.stat is None and d.version_major == version for d in decoded)
    assert len(decoded) >= n // POINTS_PER_MESSAGE
    assert all(0 < len(d.times) <= POINTS_PER_MESSAGE for d in decoded)
    assert np.array_equal(np.concatenate([d.times for d in decoded]), times[order])
    assert np.array_equal(np.concatenate([d.values for d in decoded]), values[order])
