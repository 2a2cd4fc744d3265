"""Changed ranges through the synchronous client against the official btrdb client.

One embedded server (a child process) holds a stream written in two versions: ``--points`` points,
then one point changed in every ``--every`` of them, which gives one changed range per touched leaf.
Measured, the calls taking turns going first round by round:

* ``Stream.changes`` (one list) and ``Stream.changes_iter`` (ranges as they arrive, pulled through
  the client's event loop in batches) of pingthings' sync ``Client``;
* btrdb 5.34, which has no ``Stream`` method for it: its endpoint's ``changes`` generator (grpcio), one
  batch of ranges per server message, every range counted.

Each line prints the best and median wall time of ``--repeat`` runs in ranges per second, and the
speed-up over btrdb (best against best, median against median in brackets). Small run::

    python bench/sync_changes.py --points 400000 --every 4000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from client import embedded_server, rotated

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", DeprecationWarning)

T0 = 1_700_000_000_000_000_000
SPACING = 1 << 30  # ns between points: many leaves


def _timed(walls: list[float], fn: Callable[[], int], expected: int) -> None:
    start = time.perf_counter()
    count = fn()
    walls.append(time.perf_counter() - start)
    if count != expected:
        raise AssertionError(f"got {count} ranges, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--points", type=int, default=4_000_000, help="points in version 1 (default 4 000 000)"
    )
    parser.add_argument(
        "--every", type=int, default=2_000, help="change one point in every N (default 2 000)"
    )
    parser.add_argument("--repeat", type=int, default=9, help="runs of each measurement (default 9)")
    args = parser.parse_args()

    import btrdb

    import pingthings.timeseries as pt

    with embedded_server("process") as endpoint:
        conn = pt.connect(endpoint=endpoint)
        stream = conn.create(uuid.uuid4(), "bench/changes", {"name": "changes"})
        times = T0 + np.arange(args.points, dtype=np.int64) * SPACING
        first = stream.insert((times, np.ones(args.points)))
        touched = times[:: args.every] + 1
        second = stream.insert((touched, np.zeros(touched.size)))
        ranges = len(stream.changes(first, second, 0))
        db = btrdb.connect(endpoint)

        def ours_list() -> int:
            return len(stream.changes(first, second, 0))

        def ours_iter() -> int:
            return sum(1 for _ in stream.changes_iter(first, second, 0))

        def btrdb_gen() -> int:
            return sum(len(batch) for batch, _ in db.ep.changes(stream.uuid, first, second, 0))

        calls: dict[str, Callable[[], int]] = {
            "pingthings Stream.changes": ours_list,
            "pingthings Stream.changes_iter": ours_iter,
            "btrdb ep.changes": btrdb_gen,
        }
        walls: dict[str, list[float]] = {name: [] for name in calls}
        names = list(calls)
        for name in names:  # warm up every path once
            calls[name]()
        for round_ in range(args.repeat):
            order: list[Any] = rotated(names, round_)  # type: ignore[arg-type]
            for name in order:
                _timed(walls[name], calls[name], ranges)
        conn.close()

    print(f"{ranges} changed ranges between versions {first} and {second}; {args.repeat} runs each")
    base = walls["btrdb ep.changes"]
    for name, runs in walls.items():
        best, median = min(runs), statistics.median(runs)
        line = f"{name:<34} {ranges / best:12,.0f} ranges/s best {ranges / median:12,.0f} median"
        if name != "btrdb ep.changes":
            line += f"  {min(base) / best:5.1f}x btrdb (median {statistics.median(base) / median:.1f}x)"
        print(line)


if __name__ == "__main__":
    main()
