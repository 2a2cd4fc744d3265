"""Peak client memory while iterating a long stream chunk by chunk.

The ``*_iter`` methods promise bounded memory: a caller that looks at one chunk at a time must be
able to walk 10**8 points (1.6 GB as int64 + float64) with the client process staying under
300 MB. This script checks that with the sync ``Client`` against an embedded server in a child
process (so the server's memory is not counted):

1. inserts ``--points`` points of a 120 Hz signal in slices of ``--slice`` points;
2. resets the kernel's peak-RSS mark of this process (``/proc/self/clear_refs``), then iterates
   ``raw_values_iter`` over the whole range, touching every chunk (a running sum) and dropping it;
3. prints the peak RSS during the iteration (``VmHWM``), the RSS before it, the points seen and
   the rate.

Usage::

    python bench/iter_memory.py                    # 10**8 points (about a minute to insert)
    python bench/iter_memory.py --points 2000000   # a quick check
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from client import PERIOD, T0, embedded_server

import pingthings.timeseries as pt


def status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (e.g. VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=100_000_000)
    parser.add_argument("--slice", type=int, default=2_000_000, help="points inserted at a time")
    args = parser.parse_args()

    with embedded_server("process") as endpoint, pt.connect(endpoint=endpoint) as conn:
        stream = conn.create(uuid.uuid4(), "bench/iter_memory", tags={"name": "long"})
        rng = np.random.default_rng(7)
        started = time.perf_counter()
        for first in range(0, args.points, args.slice):
            n = min(args.slice, args.points - first)
            times = T0 + (first + np.arange(n, dtype=np.int64)) * PERIOD
            stream.insert((times, 60.0 + rng.normal(0, 0.01, n)))
        insert_s = time.perf_counter() - started
        end = T0 + args.points * PERIOD
        rate = args.points / insert_s / 1e6
        print(f"inserted {args.points:,} points in {insert_s:.1f} s ({rate:.2f} M points/s)")

        rss_before = status_kib("VmRSS")
        exact_peak = reset_peak_rss()
        seen, total, chunks = 0, 0.0, 0
        started = time.perf_counter()
        for table in stream.raw_values_iter(T0, end):
            values = table.column("value").to_numpy()
            total += float(values.sum())
            seen += len(values)
            chunks += 1
        read_s = time.perf_counter() - started
        peak = status_kib("VmHWM")
        rate = seen / read_s / 1e6
        print(f"iterated {seen:,} points in {chunks:,} chunks in {read_s:.1f} s ({rate:.2f} M points/s)")
        print(f"client RSS before iterating: {rss_before / 1024:.0f} MiB")
        kind = "peak during the iteration" if exact_peak else "peak of the whole process (clear_refs refused)"
        print(f"client RSS {kind}: {peak / 1024:.0f} MiB (target < 300 MiB)")
        if seen != args.points:
            raise SystemExit(f"expected {args.points} points, saw {seen}")


if __name__ == "__main__":
    main()
