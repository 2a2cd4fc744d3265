"""Concurrent callers and abandoned calls: results stay exact and nothing stays in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire import points
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient


def read_all(client: RawClient, uu: bytes) -> tuple[np.ndarray, np.ndarray]:
    replies = [
        points.decode_raw_values(p)
        for p in client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=10**15))
    ]
    return np.concatenate([r.times for r in replies]), np.concatenate([r.values for r in replies])


def test_parallel_writers_and_readers(server: Server, unique_collection: str) -> None:
    writers, batches, size = 6, 8, 3000

    def work(k: int) -> tuple[bytes, np.ndarray, np.ndarray]:
        with RawClient(server.endpoint) as client:
            uu = create(client, unique_collection, {"name": f"w{k}"})
            times = np.arange(batches * size, dtype=np.int64) * 1_000 + k
            values = np.full(len(times), float(k))
            for b in range(batches):
                insert(client, uu, times[b * size : (b + 1) * size], values[b * size : (b + 1) * size])
                got_t, _ = read_all(client, uu)  # reads interleave with the other writers
                np.testing.assert_array_equal(got_t, times[: (b + 1) * size])
            return uu, times, values

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(work, range(writers)))
    with RawClient(server.endpoint) as client:
        for uu, times, values in results:
            got_t, got_v = read_all(client, uu)
            np.testing.assert_array_equal(got_t, times)
            np.testing.assert_array_equal(got_v, values)


def test_abandoned_stream_leaves_nothing_in_flight(tmp_path) -> None:
    n = 400_000
    with Server(tmp_path) as srv, RawClient(srv.endpoint) as client:
        uu = create(client, "abandon")
        insert(client, uu, np.arange(n, dtype=np.int64) * 1000, np.zeros(n))
        call = client.channel.unary_stream("/v5api.BTrDB/RawValues")(
            bytes(v5api.RawValuesParams(uuid=uu, start=0, end=n * 1000)), timeout=60
        )
        assert len(points.decode_raw_values(next(call)).times) > 0
        call.cancel()
        tracker = srv.runtime.tracker
        deadline = time.monotonic() + 20
        while tracker.active:
            assert time.monotonic() < deadline, "the cancelled call never ended on the server"
            threading.Event().wait(0.01)
        assert client.info().major_version == 5
        got_t, _ = read_all(client, uu)
        assert len(got_t) == n
