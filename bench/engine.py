"""Benchmark of the storage engine (pingthings.server.engine); prints figures, asserts nothing.

Measures, on a synthetic 120 Hz PMU-like signal (see ``pmu_signal``):

1. insert throughput: ``--points`` points in batches of ``--batch`` (target >= 3 M points/s);
2. raw read of all of them into numpy, from a freshly opened engine, with the decoded-block cache off
   and on: the first (cold) read and the best of 3 (target >= 20 M points/s, cold);
3. an aligned-windows query returning 1,000 windows over ``--big-points`` points and over
   ``--small-points`` points (target: time ratio <= 2);
4. bytes per point on disk (SQLite file after a WAL checkpoint, all blocks, internal nodes and versions
   included) for the ``--points`` stream (target <= 5.5).

``--storage`` instead prints bytes per point, bulk and live, and the cold raw-read rate of five
signals (see ``storage_signals``): bulk = ``--batch``-point inserts; live = one insert per stream
second (the signal's rate in points) through a buffered engine, measured after a clean close.

``--dense`` instead measures insert, raw read and bytes per point of ``--points`` regularly spaced points
(noise values) at several spacings: 120 Hz, 240 Hz (a pw-32 bucket then holds ~1030 points, so its leaves
hold ~16), 1 us and 1 ns, plus a sweep of spacings over one factor of 64 (every leaf size a split can give).

Wall time and process CPU time are both printed; on a shared machine trust the CPU time more.
Example: ``python bench/engine.py --points 1000000 --big-points 10000000``.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pingthings.server.engine import Buffering, Engine
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

RATE_HZ = 120
T0 = 1_700_000_000 * 10**9  # 2023-11-14, on a whole second


def pmu_signal(
    n: int, start_index: int = 0, seed: int = 7, rate_hz: int = RATE_HZ
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of a 120 Hz (or ``rate_hz``) PMU voltage-magnitude channel, from sample ``start_index``.

    * Times: the ideal 120 Hz grid from T0 (k * 1e9 / 120 ns), rounded to whole microseconds as an IEEE
      C37.118 FRACSEC with a 1 MHz time base is, plus a timing jitter of N(0, 1 us) rounded to whole us.
    * Values: a 7,200 V (12.47 kV feeder, line to neutral) magnitude with a slow drift (a random walk of
      0.02 V steps per sample plus a 2 V, 15-minute sinusoid of load variation) and white measurement noise
      N(0, 0.5 V), then rounded to float32 as C37.118 floating-point phasors are.
    """
    rng = np.random.default_rng(seed + start_index)
    k = np.arange(start_index, start_index + n, dtype=np.int64)
    grid_us = (k * 1_000_000 + rate_hz // 2) // rate_hz
    jitter_us = np.rint(rng.normal(0.0, 1.0, n)).astype(np.int64)
    times = T0 + (grid_us + jitter_us) * 1000
    seconds = k / rate_hz
    drift = np.cumsum(rng.normal(0.0, 0.02, n)) + 2.0 * np.sin(2 * np.pi * seconds / 900.0)
    values = (7200.0 + drift + rng.normal(0.0, 0.5, n)).astype(np.float32).astype(np.float64)
    return times, values


def batches(total: int, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The signal cut into insert batches."""
    for first in range(0, total, size):
        yield pmu_signal(min(size, total - first), first)


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds, result) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def fill(engine: Engine, sid: bytes, total: int, batch: int) -> tuple[float, float]:
    """Insert ``total`` points; returns (wall, cpu) seconds spent inside ``insert`` only."""
    wall = cpu = 0.0
    for t, v in batches(total, batch):
        w, c, _ = timed(functools.partial(engine.insert, sid, t, v))
        wall += w
        cpu += c
    return wall, cpu


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:8.2f} M points/s" if seconds > 0 else "inf"


def bench_insert_read_size(workdir: Path, points: int, batch: int) -> None:
    db = workdir / "insert.sqlite3"
    sid = uuid.uuid4().bytes
    with Engine(db) as engine:
        engine.create_stream(sid)
        wall, cpu = fill(engine, sid, points, batch)
        print(f"insert {points:,} points in batches of {batch:,}:")
        print(f"    wall {wall:7.2f} s  {rate(points, wall)}   cpu {cpu:7.2f} s  {rate(points, cpu)}")
        engine.checkpoint()
    size = sum(p.stat().st_size for p in workdir.glob("insert.sqlite3*"))
    print(
        f"bytes per point on disk: {size / points:.3f} ({size:,} bytes, after a WAL checkpoint; "
        f"{16 * points / size:.2f}x smaller than 16-byte (int64, float64) points)"
    )
    start, end = T0 - 10**9, T0 + (points // RATE_HZ + 10) * 10**9
    for cache_bytes, label in ((0, "decoded-block cache off"), (None, "default decoded-block cache")):
        kwargs = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
        with Engine(db, **kwargs) as engine:  # a fresh engine: nothing decoded yet
            runs = []
            for _ in range(3):
                w, c, out = timed(functools.partial(engine.raw_values, sid, start, end))
                got = out[1].size  # type: ignore[index]
                assert got == points, (got, points)
                runs.append((w, c))
        first, best = runs[0], min(runs)
        print(f"raw read of {points:,} points into numpy, {label} (first read of a fresh engine; best of 3):")
        for name, (wall, cpu) in (("first", first), ("best ", best)):
            timing = f"wall {wall:7.2f} s  {rate(points, wall)}   cpu {cpu:7.2f} s  {rate(points, cpu)}"
            print(f"    {name} {timing}")


def aligned_1000(db: Path, sid: bytes, points: int, repeats: int = 5) -> tuple[float, float, float]:
    """(median cold wall, best warm wall, best warm cpu) of an aligned-windows query giving 1,000 windows.

    Cold: the first query of a freshly opened engine (empty block caches; the OS page cache is warm).
    """
    span = points * 10**9 // RATE_HZ
    pw = max(0, math.floor(math.log2(span / 1002)))
    start = ((T0 >> pw) + 1) << pw  # first whole window inside the data: all 1,000 windows hold points
    end = start + 1000 * (1 << pw)
    cold: list[float] = []
    best = (math.inf, math.inf)
    windows = 0
    for _ in range(repeats):
        with Engine(db) as engine:
            engine.latest_version(sid)  # load the stream row outside the timing
            query = functools.partial(engine.aligned_windows, sid, start, end, pw)
            w, _, out = timed(query)
            cold.append(w)
            for _ in range(repeats):
                w, c, out = timed(query)
                best = min(best, (w, c))
            windows = len(out[1])  # type: ignore[index]
    assert windows == 1000, windows
    cold_median = sorted(cold)[len(cold) // 2]
    print(
        f"    {points:>13,} points: pw {pw}, {windows} windows, cold (median) {cold_median * 1e3:7.2f} ms, "
        f"warm best wall {best[0] * 1e3:7.2f} ms, cpu {best[1] * 1e3:7.2f} ms"
    )
    return cold_median, best[0], best[1]


def bench_aligned(workdir: Path, small: int, big: int, batch: int) -> None:
    print("aligned windows returning 1,000 windows:")
    results = []
    for n in (small, big):
        db = workdir / f"aligned-{n}.sqlite3"
        sid = uuid.uuid4().bytes
        with Engine(db) as engine:
            engine.create_stream(sid)
            fill(engine, sid, n, batch)
        results.append(aligned_1000(db, sid, n))
    (f_small, w_small, c_small), (f_big, w_big, c_big) = results
    print(
        f"    ratio big/small: cold {f_big / f_small:.2f}, warm wall {w_big / w_small:.2f}, "
        f"cpu {c_big / max(c_small, 1e-9):.2f}"
    )


DENSE_SPACINGS = (8_333_333, 4_166_667, 1000, 1)


def bench_dense_one(workdir: Path, spacing: int, points: int, batch: int, pmu_rate: int = 0) -> None:
    """Insert, raw read and size of ``points`` points ``spacing`` ns apart (float32 noise around 60).

    With ``pmu_rate`` the points are :func:`pmu_signal` at that rate instead (``spacing`` is then only the
    label): the signal the bytes-per-point target is defined on.
    """
    name = f"dense-{spacing}-{uuid.uuid4().hex[:8]}.sqlite3"
    db = workdir / name
    sid = uuid.uuid4().bytes
    if pmu_rate:
        times, values = pmu_signal(points, rate_hz=pmu_rate)
    else:
        times = T0 + np.arange(points, dtype=np.int64) * spacing
        values = np.random.default_rng(1).normal(60, 1, points).astype(np.float32).astype(np.float64)
    with Engine(db) as engine:
        engine.create_stream(sid)
        ins_w = ins_c = 0.0
        for i in range(0, points, batch):
            part = (times[i : i + batch], values[i : i + batch])
            w, c, _ = timed(functools.partial(engine.insert, sid, *part))
            ins_w += w
            ins_c += c
        engine.checkpoint()
    size = sum(p.stat().st_size for p in workdir.glob(f"{name}*"))
    with Engine(db) as engine:
        best = None
        for _ in range(3):
            w, c, out = timed(functools.partial(engine.raw_values, sid, int(times[0]), int(times[-1]) + 1))
            assert out[1].size == points  # type: ignore[index]
            best = (w, c) if best is None or w < best[0] else best
    assert best is not None
    label = f"PMU {pmu_rate} Hz" if pmu_rate else f"{spacing:>10,} ns"
    print(
        f"  {label:>13}: insert wall {rate(points, ins_w)} cpu {rate(points, ins_c)} | "
        f"read wall {rate(points, best[0])} cpu {rate(points, best[1])} | {size / points:.2f} B/pt"
    )


def bench_dense(workdir: Path, points: int, batch: int) -> None:
    print(f"dense streams: {points:,} points in batches of {batch:,}, raw read best of 3 (fresh engine)")
    for spacing in DENSE_SPACINGS:
        bench_dense_one(workdir, spacing, points, batch)
    print("  PMU signals (float32 values near 7,200 V, us timestamps with jitter), as for the B/pt target:")
    for rate in (120, 240):
        bench_dense_one(workdir, 10**9 // rate, points, batch, pmu_rate=rate)
    print("  sweep: leaves of every size a split can give (2 us to 64 us, factors of 2)")
    for k in range(1, 7):
        bench_dense_one(workdir, 1000 << k, points, batch)


def storage_signals(n: int) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """The five signals of the storage figures: name -> (rate in Hz, times, values).

    * noisy decimal PMU: 120 Hz, uniform +-2 us time jitter (ns resolution), values
      ``round(7200 + 3 sin + drift + N(0, 0.05), 3)`` (recorded to 1e-3, as float64);
    * float32 C37.118: :func:`pmu_signal` (us-rounded jitter, values rounded to float32);
    * int16 point-on-wave: 960 Hz, a 60 Hz sine of 20,000 counts plus N(0, 8) counts, times a
      calibration factor of 0.0123;
    * smooth sine: 120 Hz, ``sin`` of time, unrounded float64;
    * random float64: uniform in [0, 1) (the worst case).
    """
    rng = np.random.default_rng(5)
    k = np.arange(n, dtype=np.int64)
    grid120 = T0 + (k * 1_000_000_000) // RATE_HZ
    jitter = rng.integers(-2000, 2001, n)
    drift = np.cumsum(rng.normal(0.0, 1e-4, n))
    decimal = np.round(7200 + 3 * np.sin(2 * np.pi * k / RATE_HZ / 7) + drift + rng.normal(0.0, 0.05, n), 3)
    counts = np.clip(np.rint(20000 * np.sin(2 * np.pi * 60 * k / 960) + rng.normal(0, 8, n)), -32768, 32767)
    return {
        "noisy decimal PMU": (RATE_HZ, grid120 + jitter, decimal),
        "float32 C37.118": (RATE_HZ, *pmu_signal(n)),
        "int16 POW x scale": (960, T0 + (k * 1_000_000_000) // 960, counts * 0.0123),
        "smooth sine": (RATE_HZ, grid120, np.sin(k / 5000.0)),
        "random float64": (RATE_HZ, grid120, rng.random(n)),
    }


def engine_files(workdir: Path, stem: str) -> int:
    """Bytes of one engine's files (database, WAL, journal)."""
    return sum(p.stat().st_size for p in workdir.glob(f"{stem}*"))


def bench_storage(workdir: Path, points: int, batch: int) -> None:
    print(f"storage of {points:,} points per signal; bulk: {batch:,}-point inserts; live: 1 insert a second")
    print(f"{'signal':<20} {'bulk B/pt':>10} {'live B/pt':>10} {'live/bulk':>10} {'cold raw read':>22}")
    for name, (hz, t, v) in storage_signals(points).items():
        sizes = []
        sid = uuid.uuid4().bytes
        for label, step, buffering in (("bulk", batch, None), ("live", hz, Buffering())):
            stem = f"{label}-{name.replace(' ', '_')}"
            with Engine(workdir / f"{stem}.sqlite3", buffering=buffering) as engine:
                engine.create_stream(sid)
                for lo in range(0, points, step):
                    engine.insert(sid, t[lo : lo + step], v[lo : lo + step])
            sizes.append(engine_files(workdir, stem) / points)
        with Engine(workdir / f"bulk-{name.replace(' ', '_')}.sqlite3", cache_bytes=0) as engine:
            _, c, out = timed(functools.partial(engine.raw_values, sid, MIN_TIME, TIME_LIMIT - 1))
        assert out[1].size == points  # type: ignore[index]
        print(
            f"{name:<20} {sizes[0]:10.2f} {sizes[1]:10.2f} {sizes[1] / sizes[0]:10.2f}x"
            f" {rate(points, c)} cpu"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=10_000_000, help="points for insert/read/size")
    parser.add_argument("--batch", type=int, default=50_000, help="points per insert")
    parser.add_argument("--small-points", type=int, default=1_000_000, help="small stream of the ratio test")
    parser.add_argument("--big-points", type=int, default=100_000_000, help="big stream of the ratio test")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the databases")
    parser.add_argument("--dense", action="store_true", help="only the dense-spacing measurements")
    parser.add_argument("--storage", action="store_true", help="only the storage figures of five signals")
    args = parser.parse_args()
    if args.storage:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            bench_storage(Path(tmp), args.points, args.batch)
        return
    if args.dense:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            bench_dense(Path(tmp), args.points, args.batch)
        return
    print(pmu_signal.__doc__)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        print(f"pid {os.getpid()}, databases in {work}")
        bench_insert_read_size(work, args.points, args.batch)
        bench_aligned(work, args.small_points, args.big_points, args.batch)


if __name__ == "__main__":
    main()
