"""Time to a DataFrame of a multi-stream read: pingthings against btrdb-python, one server.

16 streams of 10^6 points each (120 Hz, the same times in every stream, like PMU channels) are
inserted into an embedded server running in a child process. Then, on the same server, each of
these builds one wide DataFrame (time index, one column per stream) of the whole range:

* pingthings ``StreamSet.to_pandas(start, end)`` and ``to_polars(start, end)``;
* btrdb ``StreamSet.filter(start, end).arrow_to_dataframe()`` (its Arrow path, ArrowMultiValues);
* btrdb ``StreamSet.filter(start, end).to_dataframe()`` (its default path: ``values()`` as
  Python objects, then pandas). It takes minutes at full size and runs last, ``--slow-repeat``
  times.

The fast calls take turns going first, round by round, ``--repeat`` rounds; each result is
dropped before the next call. Prints best and median seconds and Mpoints/s, and the speed-up of
``to_pandas`` over each btrdb path (best against best, median against median)::

    python bench/dataframes.py --points 20000 --repeat 2     # a quick check
    python bench/dataframes.py                               # 16 x 10^6 points
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", DeprecationWarning)

T0 = 1_700_000_000_000_000_000
PERIOD = 8_333_333  # 120 Hz


def _serve(data_dir: str, ready: Any, stop: Any) -> None:
    from pingthings.server import Server

    with Server(data_dir, listen="127.0.0.1:0") as srv:
        ready.put(srv.endpoint)
        stop.wait()


def _timed(fn: Callable[[], Any], expected_rows: int) -> float:
    gc.collect()
    began = time.perf_counter()
    frame = fn()
    elapsed = time.perf_counter() - began
    rows = frame.height if hasattr(frame, "height") else len(frame)
    assert rows == expected_rows, f"{rows} rows, expected {expected_rows}"
    del frame
    return elapsed


def _line(name: str, times: list[float], points: int) -> tuple[float, float]:
    best, median = min(times), statistics.median(times)
    print(
        f"{name:<44} best {best:8.3f} s ({points / best / 1e6:6.1f} Mpt/s)   "
        f"median {median:8.3f} s ({points / median / 1e6:6.1f} Mpt/s)   n={len(times)}"
    )
    return best, median


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--points", type=int, default=1_000_000, help="points per stream")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--slow-repeat", type=int, default=1, help="runs of btrdb to_dataframe (0 skips it)")
    args = parser.parse_args()

    import btrdb

    import pingthings.timeseries as pt

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    with tempfile.TemporaryDirectory() as data_dir:
        server = ctx.Process(target=_serve, args=(data_dir, ready, stop), daemon=True)
        server.start()
        endpoint = ready.get(timeout=60)
        try:
            conn = pt.connect(endpoint=endpoint)
            times = T0 + np.arange(args.points, dtype=np.int64) * PERIOD
            rng = np.random.default_rng(0)
            uuids = []
            began = time.perf_counter()
            for i in range(args.streams):
                stream = conn.create(uuid.uuid4(), "bench/dataframes", {"name": f"ch{i}", "unit": "V"})
                stream.insert((times, rng.normal(120.0, 1.0, args.points)))
                uuids.append(stream.uuid)
            total = args.streams * args.points
            print(f"inserted {args.streams} x {args.points:,} points in {time.perf_counter() - began:.1f} s")
            start, end = int(times[0]), int(times[-1]) + 1

            ours = conn.streamset_from_uuids(uuids)
            bt = btrdb.connect(endpoint)
            theirs = bt.streams(*[str(u) for u in uuids]).filter(start=start, end=end)

            fast: dict[str, Callable[[], Any]] = {
                "pingthings to_pandas": lambda: ours.to_pandas(start, end),
                "pingthings to_polars": lambda: ours.to_polars(start, end),
                "btrdb arrow_to_dataframe": lambda: theirs.arrow_to_dataframe(),
            }
            results: dict[str, list[float]] = {name: [] for name in fast}
            names = list(fast)
            for round_ in range(args.repeat):
                order = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in order:
                    results[name].append(_timed(fast[name], args.points))
            if args.slow_repeat:
                results["btrdb to_dataframe"] = [
                    _timed(lambda: theirs.to_dataframe(), args.points) for _ in range(args.slow_repeat)
                ]
            print(f"\n{args.streams} streams x {args.points:,} points = {total:,} points, wide DataFrame\n")
            figures = {name: _line(name, ts, total) for name, ts in results.items()}
            ref = figures["pingthings to_pandas"]
            for name in ("btrdb arrow_to_dataframe", "btrdb to_dataframe"):
                if name in figures:
                    best, median = figures[name]
                    speedup = f"{best / ref[0]:.1f}x best ({median / ref[1]:.1f}x median)"
                    print(f"to_pandas speed-up over {name}: {speedup}")
            conn.close()
        finally:
            stop.set()
            server.join(30)


if __name__ == "__main__":
    main()
