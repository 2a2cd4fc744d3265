"""The server-wide read gate: few reads compute at once, none waits on a stalled one, answers stay exact."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import numpy as np
import pyarrow as pa
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.config import ConfigError, ServerConfig
from pingthings.server.service.prefetch import prefetched
from pingthings.server.service.read_gate import ReadGate, default_read_workers
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import points
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT
from tests.server.helpers import create, insert, random_points
from tests.server.rawclient import PREFIX, RawClient

# ``prefetched`` serves grpclib's handlers, which only ever run on asyncio.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class Busy:
    """Yields ``n`` items; each step holds a shared counter up for a moment and records its peak."""

    active = 0
    peak = 0
    lock = threading.Lock()

    def __init__(self, n: int) -> None:
        self.left = n

    def __iter__(self) -> Busy:
        return self

    def __next__(self) -> int:
        if self.left == 0:
            raise StopIteration
        self.left -= 1
        with Busy.lock:
            Busy.active += 1
            Busy.peak = max(Busy.peak, Busy.active)
        time.sleep(0.002)  # stands for engine work that releases the GIL
        with Busy.lock:
            Busy.active -= 1
        return self.left


async def drain(gate: ReadGate, n: int) -> int:
    return len([x async for x in prefetched(lambda: Busy(n), gate=gate)])


@asyncio_only
@pytest.mark.anyio
@pytest.mark.parametrize("slots", [1, 2])
async def test_gate_bounds_concurrent_producers(slots: int) -> None:
    Busy.active = Busy.peak = 0
    gate = ReadGate(slots)
    results: list[int] = []

    async def one() -> None:
        results.append(await drain(gate, 20))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one)
    assert results == [20] * 6
    assert 1 <= Busy.peak <= slots
    assert gate.busy == 0


@asyncio_only
@pytest.mark.anyio
async def test_a_stalled_consumer_does_not_hold_the_only_slot() -> None:
    gate = ReadGate(1)
    stalled = prefetched(lambda: iter(range(1000)), depth=1, gate=gate)
    assert await anext(stalled) == 0  # its worker now waits for room, holding no slot
    with anyio.fail_after(30):
        assert await drain(gate, 50) == 50
    await stalled.aclose()
    assert gate.busy == 0


@asyncio_only
@pytest.mark.anyio
async def test_slots_are_returned_after_errors_and_early_stops() -> None:
    gate = ReadGate(1)

    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        async for _ in prefetched(broken, gate=gate):
            pass

    def refuses() -> Iterator[int]:
        raise KeyError("no such stream")

    with pytest.raises(KeyError):
        async for _ in prefetched(refuses, gate=gate):
            pass
    early = prefetched(lambda: iter(range(10**6)), gate=gate)
    async for item in early:
        if item == 3:
            break
    await early.aclose()
    assert gate.busy == 0
    with anyio.fail_after(30):
        assert await drain(gate, 5) == 5


def test_gate_sizes() -> None:
    assert ReadGate().slots == default_read_workers() >= 2
    assert ReadGate(3).slots == 3
    with pytest.raises(ValueError, match="at least one slot"):
        ReadGate(0)


@pytest.mark.parametrize(
    ("field", "value"), [("cache_mb", -1), ("cache_mb", 1.5), ("read_workers", 0), ("read_workers", True)]
)
def test_config_refuses_bad_cache_and_worker_settings(tmp_path: Path, field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ServerConfig(data_dir=tmp_path, **{field: value})  # type: ignore[arg-type]


def read_arrow(client: RawClient, uu: bytes) -> tuple[list[int], np.ndarray, np.ndarray]:
    replies = [
        v5api.ArrowRawValuesResponse.parse(p)
        for p in client.stream(
            "ArrowRawValues", v5api.ArrowRawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1)
        )
    ]
    assert all(r.stat is None for r in replies)
    table = pa.concat_tables([wire_arrow.ipc_to_table(r.arrow_bytes) for r in replies])
    return (
        [r.version_major for r in replies],
        table.column("time").cast(pa.int64()).to_numpy(),
        table.column("value").to_numpy(),
    )


def read_raw(client: RawClient, uu: bytes) -> tuple[list[int], np.ndarray, np.ndarray]:
    decoded = [
        points.decode_raw_values(p)
        for p in client.stream(
            "RawValues", v5api.RawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1)
        )
    ]
    assert all(d.stat is None for d in decoded)
    return (
        [d.version_major for d in decoded],
        np.concatenate([d.times for d in decoded]),
        np.concatenate([d.values for d in decoded]),
    )


def test_many_concurrent_reads_with_one_slot_and_a_stalled_reader_are_exact(tmp_path: Path) -> None:
    """One read slot, a tiny cache, a reader that stops consuming: every other read still completes."""
    rng = np.random.default_rng(5)
    with Server(tmp_path, listen="127.0.0.1:0", read_workers=1, cache_mb=1) as srv:
        assert srv.runtime.engine.cache_info()["capacity"] == 1 << 20
        with RawClient(srv.endpoint) as client:
            big = create(client, "gate/big")
            bt, bv = random_points(rng, 300_000)
            insert(client, big, bt, bv)
            streams = []
            for i in range(8):
                uu = create(client, "gate/small")
                t, v = random_points(rng, 20_000 + 1000 * i)
                streams.append((uu, insert(client, uu, t, v), np.sort(t), v[np.argsort(t)]))
            call = client.channel.unary_stream(PREFIX + "ArrowRawValues")(
                bytes(v5api.ArrowRawValuesParams(uuid=big, start=MIN_TIME, end=TIME_LIMIT - 1)), timeout=60
            )
            next(call)  # one message taken; the rest waits on flow control and the prefetch queue
            try:
                with ThreadPoolExecutor(8) as pool:
                    jobs = [
                        (s, pool.submit(read_arrow if i % 2 else read_raw, client, s[0]))
                        for i, s in enumerate(streams)
                    ]
                    for (_, version, t, v), job in jobs:
                        versions, got_t, got_v = job.result(timeout=60)
                        assert set(versions) == {version}
                        np.testing.assert_array_equal(got_t, t)
                        np.testing.assert_array_equal(got_v, v)
            finally:
                call.cancel()
            info = srv.runtime.engine.cache_info()
            assert info["bytes"] <= info["capacity"]
