"""The embedded server's own CPU per small call: Info, aligned windows, a StreamSet, an insert.

The calls: Info, ~1,000 aligned windows, a StreamSet fan-out of aligned windows, a 120-point insert.

Usage: ``python bench/server_cpu.py [--calls N] [--streams S] [--rounds R]``; ``PYTHONPATH=old/src``
measures an older checkout's server (the client is the same either way).

A fresh ``python -m pingthings.server`` process (its CPU is its own) is driven by our sync client,
one call after another, and the server's user + system CPU is read from ``/proc/<pid>/stat``
(10 ms ticks: every figure sums enough calls for that to be small) around each batch of calls:

* ``Info``: ``N`` calls;
* ``aligned_windows``: ``N / 10`` queries of about 1,000 windows (1,863 returned) of a
  120,000-point stream, as in ``bench/windows_fanout.py``;
* ``StreamSet``: ``R`` StreamSet ``aligned_windows`` of ``S`` streams of 1,200 points (~10 windows
  each; one MultiAlignedWindows call);
* ``insert``: ``N`` sequential 120-point inserts into one stream (buffered: the server's default),
  after 50 unmeasured ones.

Wall time is printed too but on a shared machine only the CPU figures mean much; the load average
is printed with them. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import client_info
import numpy as np

from pingthings.timeseries import Client, StreamSet

T0 = 1_700_000_000_000_000_000
PERIOD = 8_333_333  # 120 Hz
BIG_POINTS = 120_000
SMALL_POINTS = 1_200
FANOUT_PW = 30


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pid: int, calls: int, run: Callable[[], None]) -> tuple[float, float]:
    """``(server CPU µs, wall µs)`` per call of ``run`` done ``calls`` times."""
    cpu, wall = cpu_of(pid), time.perf_counter()
    for _ in range(calls):
        run()
    return (cpu_of(pid) - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="Info calls and inserts (default 3000)")
    parser.add_argument("--streams", type=int, default=1000, help="streams of the StreamSet (default 1000)")
    parser.add_argument("--rounds", type=int, default=10, help="StreamSet calls (default 10)")
    args = parser.parse_args()
    port = client_info._free_port()
    endpoint = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        command = [sys.executable, "-m", "pingthings.server", "--data", data, "--listen", endpoint]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            conn = None
            deadline = time.monotonic() + 60
            while conn is None:
                try:
                    conn = Client.connect(endpoint=endpoint, connect_timeout=1.0)
                except Exception:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)  # waiting for the server to listen, outside any measurement
            with conn:
                run_all(conn, proc.pid, args)
        finally:
            proc.terminate()
            proc.wait(60)


def run_all(conn: Client, pid: int, args: argparse.Namespace) -> None:
    big = conn.create(uuid.uuid4(), "bench/server_cpu", {"name": "big"})
    t = T0 + np.arange(BIG_POINTS, dtype=np.int64) * PERIOD
    big.insert((t, np.cos(np.arange(BIG_POINTS) / 500.0)))
    big.flush()
    big_end = int(t[-1]) + 1
    pw = int(np.floor(np.log2((big_end - T0) // 1000)))
    small_t = T0 + np.arange(SMALL_POINTS, dtype=np.int64) * PERIOD
    small = [conn.create(uuid.uuid4(), "bench/server_cpu", {"name": f"s{i}"}) for i in range(args.streams)]
    StreamSet(small).insert({s.uuid: (small_t, np.sin(np.arange(SMALL_POINTS) / 50.0)) for s in small})
    for s in small:
        s.flush()
    fan = StreamSet(small)
    small_end = int(small_t[-1]) + 1
    windows = len(big.aligned_windows(T0, big_end, pw))
    for _ in range(20):  # warm the block cache and the connection
        conn.info()
        big.aligned_windows(T0, big_end, pw)
    fan.aligned_windows(T0, small_end, FANOUT_PW)
    target = conn.create(uuid.uuid4(), "bench/server_cpu", {"name": "inserted"})
    seconds = iter(range(10**9))

    def insert() -> None:
        k = next(seconds)
        times = T0 + k * 10**9 + np.arange(120, dtype=np.int64) * PERIOD
        target.insert((times, np.round(7200 + np.sin(times / 1e9), 3)))

    for _ in range(50):
        insert()
    rows = [
        ("Info", args.calls, conn.info),
        (
            f"aligned_windows ({windows} windows)",
            max(1, args.calls // 10),
            lambda: big.aligned_windows(T0, big_end, pw),
        ),
        (
            f"StreamSet {args.streams} x aligned_windows",
            args.rounds,
            lambda: fan.aligned_windows(T0, small_end, FANOUT_PW),
        ),
        ("insert, 120 points, sequential", args.calls, insert),
    ]
    print(f"server pid {pid}; load average {os.getloadavg()[0]:.2f}; code {code_origin()}")
    for name, calls, run in rows:
        cpu, wall = measure(pid, calls, run)
        print(f"{name:<44} server CPU {cpu:9.0f} us/call   wall {wall:9.0f} us/call   ({calls} calls)")
    print(f"load average {os.getloadavg()[0]:.2f}")


def code_origin() -> str:
    """Where the server's code comes from (PYTHONPATH, or the installed package)."""
    return os.environ.get("PYTHONPATH") or "installed package"


if __name__ == "__main__":
    main()
