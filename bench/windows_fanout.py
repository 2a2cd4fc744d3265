"""Small calls in bulk: one ~1,000-window aligned query, and a StreamSet fan-out of aligned windows.

Usage: ``python bench/windows_fanout.py [--streams N] [--repeat R] [--endpoint HOST:PORT]``.

Without ``--endpoint`` an embedded server runs in its own process on a free port (see
``bench/client_info.py``). The script creates ``N`` streams (default 1,000) of 1,200 points each
(10 s at 120 Hz) and one stream of 120,000 points, then measures, alternating which client goes first
in each round:

* the latency of about 1,000 aligned windows of the big stream: our sync ``Stream.aligned_windows``
  and ``AsyncStream.aligned_windows`` against btrdb's ``aligned_windows()`` and
  ``arrow_aligned_windows()``;
* a StreamSet of the ``N`` small streams, aligned windows of 2^30 ns (~10 windows each): our sync
  ``StreamSet.aligned_windows`` against btrdb's ``StreamSet.filter(...).aligned_windows(pw).values()``
  (btrdb fans out on its connection's thread pool).

Each line prints the best and the median of ``R`` rounds, the client's CPU of the median round, and
the server's CPU per operation (from ``/proc``; 10 ms ticks). The streams are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import client_info
import numpy as np

from pingthings.timeseries import AsyncClient, Client, StreamSet

T0 = 1_700_000_000_000_000_000
PERIOD = 8_333_333  # 120 Hz
SMALL_POINTS = 1_200
BIG_POINTS = 120_000
FANOUT_PW = 30  # 2^30 ns ~ 1.07 s: ~10 windows over 10 s


class Sample:
    """Wall seconds, client CPU seconds and server CPU seconds of each run."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.servers: list[float] = []

    def run(self, fn: Callable[[], Any]) -> Any:
        server = client_info.server_cpu()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(time.process_time() - cpu)
        after = client_info.server_cpu()
        if server is not None and after is not None:
            self.servers.append(after - server)
        return result

    def line(self, label: str, unit: float, unit_name: str) -> str:
        best, median = min(self.walls), statistics.median(self.walls)
        cpu = statistics.median(self.cpus)
        text = (
            f"{label:<52} best {best * unit:8.2f} {unit_name}  median {median * unit:8.2f} {unit_name}"
            f"  client CPU {cpu * unit:8.2f} {unit_name}"
        )
        if self.servers:
            text += f"  server CPU {statistics.median(self.servers) * unit:8.2f} {unit_name}"
        return text


def ratio(ours: Sample, theirs: Sample) -> str:
    return (
        f"{min(theirs.walls) / min(ours.walls):.2f}x best, "
        f"{statistics.median(theirs.walls) / statistics.median(ours.walls):.2f}x median"
    )


@contextlib.contextmanager
def populated(conn: Client, streams: int) -> Iterator[tuple[str, list[uuid.UUID], uuid.UUID]]:
    collection = f"bench/fanout/{uuid.uuid4().hex[:8]}"
    small_times = T0 + np.arange(SMALL_POINTS, dtype=np.int64) * PERIOD
    small_values = np.sin(np.arange(SMALL_POINTS) / 50.0)
    created = [conn.create(uuid.uuid4(), collection, {"name": f"s{i}"}) for i in range(streams)]
    StreamSet(created).insert({s.uuid: (small_times, small_values) for s in created})
    big = conn.create(uuid.uuid4(), collection, {"name": "big"})
    big_times = T0 + np.arange(BIG_POINTS, dtype=np.int64) * PERIOD
    big.insert((big_times, np.cos(np.arange(BIG_POINTS) / 500.0)))
    try:
        yield collection, [s.uuid for s in created], big.uuid
    finally:
        for stream in [*created, big]:
            stream.obliterate()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000, help="streams in the fan-out StreamSet")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; best and median are printed")
    parser.add_argument("--endpoint", help="use this running server instead of starting one")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import btrdb

    with contextlib.ExitStack() as stack:
        endpoint = args.endpoint or stack.enter_context(client_info.server_process())
        conn = stack.enter_context(Client.connect(endpoint=endpoint))
        db = btrdb.connect(endpoint)
        _, small, big_uuid = stack.enter_context(populated(conn, args.streams))
        big_end = T0 + BIG_POINTS * PERIOD
        pw = int(np.floor(np.log2((big_end - T0) // 1000)))
        small_end = T0 + SMALL_POINTS * PERIOD
        print(f"server {endpoint}; {args.streams} streams x {SMALL_POINTS} points; {args.repeat} rounds")

        ours_big = conn.stream_from_uuid(big_uuid)
        theirs_big = db.stream_from_uuid(big_uuid)
        ours_set = StreamSet([conn.stream_from_uuid(u) for u in small])
        theirs_set = db.streams(*[str(u) for u in small])

        async def async_windows() -> int:
            async with await AsyncClient.connect(endpoint=endpoint) as client:
                stream = client.stream_handle(big_uuid)
                best = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    table = await stream.aligned_windows(T0, big_end, pw)
                    best.append(time.perf_counter() - start)
                print(
                    f"{'pingthings AsyncClient aligned_windows (asyncio)':<52} best {min(best) * 1e3:8.2f} ms"
                    f"  median {statistics.median(best) * 1e3:8.2f} ms"
                )
                return int(table.num_rows)

        w_ours, w_py, w_arrow = Sample(), Sample(), Sample()
        f_ours, f_theirs = Sample(), Sample()
        calls: list[Callable[[], Any]] = [
            lambda: w_ours.run(lambda: ours_big.aligned_windows(T0, big_end, pw)),
            lambda: w_py.run(lambda: theirs_big.aligned_windows(T0, big_end, pw)),
            lambda: w_arrow.run(lambda: theirs_big.arrow_aligned_windows(T0, big_end, pw)),
        ]
        fan: list[Callable[[], Any]] = [
            lambda: f_ours.run(lambda: ours_set.aligned_windows(T0, small_end, FANOUT_PW)),
            lambda: f_theirs.run(
                lambda: theirs_set.filter(start=T0, end=small_end).aligned_windows(FANOUT_PW).values()
            ),
        ]
        for round_ in range(args.repeat):
            for call in calls[round_ % 3 :] + calls[: round_ % 3]:
                call()
            for call in fan[round_ % 2 :] + fan[: round_ % 2]:
                call()
        windows = anyio.run(async_windows)
        print(f"# one stream, ~1,000 aligned windows ({windows} returned, 2^{pw} ns)")
        print(w_ours.line("pingthings Stream.aligned_windows (sync)", 1e3, "ms"))
        print(w_py.line("btrdb Stream.aligned_windows()", 1e3, "ms"))
        print(w_arrow.line("btrdb Stream.arrow_aligned_windows()", 1e3, "ms"))
        print(f"  pingthings vs arrow_aligned_windows: {ratio(w_ours, w_arrow)}")
        print(f"# StreamSet of {args.streams} streams x aligned_windows(2^{FANOUT_PW} ns)")
        print(f_ours.line("pingthings StreamSet.aligned_windows (sync)", 1e3, "ms"))
        print(f_theirs.line("btrdb StreamSet.aligned_windows().values()", 1e3, "ms"))
        print(f"  pingthings vs btrdb: {ratio(f_ours, f_theirs)}")
        with contextlib.suppress(Exception):
            db.ep.channel.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
