"""pingthings.timeseries and btrdb-python against a server that gzip-compresses every reply.

Stock BTrDB servers compress every reply (issue 11). Here the embedded server plays that part,
started as ``pingthings serve --compression gzip`` in a child process; a second one started without
``--compression`` gives the uncompressed figures. On each server, with the synchronous
``pingthings.timeseries.Client`` and with ``btrdb`` 5.34 (grpcio):

* raw read of one stream of ``--points`` points (ours ``raw_values``; btrdb ``arrow_values()`` and,
  unless ``--skip-btrdb-values``, ``values()``, at most three runs);
* 1,000 aligned windows (ours ``aligned_windows``; btrdb ``aligned_windows()`` and
  ``arrow_aligned_windows()``);
* insert of ``--points`` points into a fresh stream (ours ``insert`` of numpy arrays; btrdb
  ``arrow_insert()`` and ``insert()`` of tuples, at most three runs);
* "fetch only": the same ArrowRawValues call made on our transport alone, the reply messages received
  (and inflated, when compressed) but not decoded: the floor our raw read can reach. Our read should
  stay within 10 % of it.

Best and median wall time over ``--repeat`` runs; within a round the calls take turns going first.
Bytes on the wire (both ways) come from one more run of each call through a counting TCP relay
(``tests/realservers/wire_relay.py``), so the timed runs pay no relay cost.

    python bench/compressed.py --points 100000 --repeat 2     # quick check
    python bench/compressed.py                                # 10^6 points, 7 runs
"""

from __future__ import annotations

import argparse
import contextlib
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.realservers.wire_relay

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", DeprecationWarning)

PW = 30
T0 = (1_700_000_000_000_000_000 >> PW) << PW  # aligned, so 1,000 windows of 2**30 ns are exact
SLOW_REPEAT = 3
ENDPOINT_RE = re.compile(r"listening on (127\.0\.0\.1:\d+)")


@contextlib.contextmanager
def serve(compression: str) -> Iterator[str]:
    """``pingthings serve --compression ...`` on a fresh data directory; yields its endpoint."""
    with tempfile.TemporaryDirectory(prefix="pt-bench-gzip-") as data:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pingthings.cli.main", "serve", "--data", data, "--listen", "127.0.0.1:0",
             "--compression", compression],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert proc.stdout is not None
            selector = selectors.DefaultSelector()
            selector.register(proc.stdout, selectors.EVENT_READ)
            endpoint = None
            deadline = time.monotonic() + 60
            while endpoint is None and time.monotonic() < deadline and selector.select(timeout=60):
                match = ENDPOINT_RE.search(proc.stdout.readline())
                endpoint = match.group(1) if match else None
            if endpoint is None:
                raise RuntimeError("the server did not start")
            yield endpoint
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


class Sample:
    """Wall times of the runs of one measurement."""

    def __init__(self) -> None:
        self.walls: list[float] = []

    def run(self, fn: Callable[[], Any]) -> None:
        start = time.perf_counter()
        fn()
        self.walls.append(time.perf_counter() - start)

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


def line(label: str, s: Sample, points: int | None = None, against: dict[str, Sample] | None = None) -> str:
    if points:
        text = f"{label:<38} {points / s.best / 1e6:7.2f} M pts/s best {points / s.median / 1e6:7.2f} median"
    else:
        text = f"{label:<38} {s.best * 1e3:8.2f} ms best {s.median * 1e3:8.2f} ms median"
    for name, other in (against or {}).items():
        text += f"  {other.best / s.best:5.1f}x {name} (median {other.median / s.median:.1f}x)"
    return text


def signal_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points over exactly 1,000 windows of 2**30 ns: a 60 Hz wave with two decimals."""
    step = (1000 << PW) // n
    times = T0 + np.arange(n, dtype=np.int64) * step
    return times, np.round(120 * np.sin(np.arange(n) * 2 * np.pi * 60 * step / 1e9), 2)


def measure(endpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement against one server; returns the samples and the bytes on the wire."""
    import anyio
    import btrdb

    import pingthings.timeseries as pt
    from pingthings._proto.v5api import ArrowRawValuesParams
    from pingthings.timeseries.transport import Channel
    from tests.realservers.wire_relay import WireRelay

    n = args.points
    times, values = signal_points(n)
    end = T0 + (1000 << PW)
    conn = pt.connect(endpoint=endpoint)
    db = btrdb.connect(endpoint)
    stream = conn.create(uuid.uuid4(), "bench/gzip", tags={"name": "read"})
    stream.insert((times, values))
    theirs = db.stream_from_uuid(stream.uuid)
    request = bytes(ArrowRawValuesParams(uuid=stream.uuid.bytes, start=T0, end=end))
    host, port = endpoint.rsplit(":", 1)

    async def fetch_only(target_host: str, target_port: int) -> int:
        size = 0
        async with (
            Channel(target_host, target_port, max_frame_size=1 << 20) as ch,
            ch.server_stream("/v5api.BTrDB/ArrowRawValues", request) as messages,
        ):
            async for message in messages:
                size += len(message)
        return size

    table = pa.table({"time": pa.array(times, pa.timestamp("ns", tz="UTC")), "value": values})
    tuples = list(zip(times.tolist(), values.tolist(), strict=True))

    def fresh(client: Any) -> Any:
        """A new stream (pingthings or btrdb) to insert into."""
        return client.create(uuid.uuid4(), "bench/gzip", tags={"name": uuid.uuid4().hex})

    def ours_insert() -> None:
        fresh(conn).insert((times, values))

    def arrow_insert() -> None:
        fresh(db).arrow_insert(table)

    def tuple_insert() -> None:
        fresh(db).insert(tuples)

    calls: dict[str, Callable[[], Any]] = {
        "fetch only (transport, no decoding)": lambda: anyio.run(fetch_only, host, int(port)),
        "ours raw_values": lambda: stream.raw_values(T0, end),
        "btrdb arrow_values": lambda: theirs.arrow_values(T0, end),
        "ours aligned_windows": lambda: stream.aligned_windows(T0, end, PW),
        "btrdb aligned_windows": lambda: theirs.aligned_windows(T0, end, PW),
        "btrdb arrow_aligned_windows": lambda: theirs.arrow_aligned_windows(T0, end, PW),
        "ours insert": ours_insert,
        "btrdb arrow_insert": arrow_insert,
    }
    slow: dict[str, Callable[[], Any]] = {"btrdb insert (tuples)": tuple_insert}
    if not args.skip_btrdb_values:
        slow["btrdb values"] = lambda: theirs.values(T0, end)
    if args.only_read:
        keep = ("fetch only (transport, no decoding)", "ours raw_values", "btrdb arrow_values")
        calls, slow = {name: calls[name] for name in keep}, {}
    assert stream.raw_values(T0, end).num_rows == n
    assert stream.aligned_windows(T0, end, PW).num_rows == 1000
    samples = {name: Sample() for name in [*calls, *slow]}
    names = list(calls)
    for round_ in range(args.repeat):
        k = round_ % len(names)
        for name in names[k:] + names[:k]:
            samples[name].run(calls[name])
    for name, fn in slow.items():
        for _ in range(min(args.repeat, SLOW_REPEAT)):
            samples[name].run(fn)

    wire: dict[str, tuple[int, int]] = {}
    if args.only_read:
        conn.close()
        return {"samples": samples, "wire": wire}
    with WireRelay(endpoint) as relay:
        rconn = pt.connect(endpoint=relay.endpoint)
        rdb = btrdb.connect(relay.endpoint)
        rstream, rtheirs = rconn.stream_from_uuid(stream.uuid), rdb.stream_from_uuid(stream.uuid)
        counted: dict[str, Callable[[], Any]] = {
            "ours raw_values": lambda: rstream.raw_values(T0, end),
            "btrdb arrow_values": lambda: rtheirs.arrow_values(T0, end),
            "ours aligned_windows": lambda: rstream.aligned_windows(T0, end, PW),
            "btrdb arrow_aligned_windows": lambda: rtheirs.arrow_aligned_windows(T0, end, PW),
            "ours insert": lambda: fresh(rconn).insert((times, values)),
            "btrdb arrow_insert": lambda: fresh(rdb).arrow_insert(table),
        }
        for name, fn in counted.items():
            fn()  # warm: the connection and its settings are counted once, here
            relay.reset()
            fn()
            wire[name] = (relay.to_server, relay.to_client)
        rconn.close()
    conn.close()
    return {"samples": samples, "wire": wire}


def report_read(title: str, result: dict[str, Any], points: int) -> None:
    s = result["samples"]
    fetch, ours = s["fetch only (transport, no decoding)"], s["ours raw_values"]
    print(f"\n== {title} (reads only)")
    print(line("fetch only (transport, no decoding)", fetch, points))
    against = {"arrow_values": s["btrdb arrow_values"], "fetch only": fetch}
    print(line("ours raw_values", ours, points, against))
    print(line("btrdb arrow_values", s["btrdb arrow_values"], points))
    best, median = ours.best / fetch.best, ours.median / fetch.median
    print(f"ours raw_values / fetch only: {best:.3f} (best), {median:.3f} (median)")


def report(title: str, result: dict[str, Any], points: int) -> None:
    s = result["samples"]
    print(f"\n== {title}")
    print(line("fetch only (transport, no decoding)", s["fetch only (transport, no decoding)"], points))
    fetch = s["fetch only (transport, no decoding)"]
    read_against = {"arrow_values": s["btrdb arrow_values"], "fetch only": fetch}
    if "btrdb values" in s:
        read_against["values"] = s["btrdb values"]
    print(line("ours raw_values", s["ours raw_values"], points, read_against))
    print(line("btrdb arrow_values", s["btrdb arrow_values"], points))
    if "btrdb values" in s:
        print(line("btrdb values", s["btrdb values"], points))
    print(
        line(
            "ours aligned_windows (1000)",
            s["ours aligned_windows"],
            None,
            {
                "aligned_windows": s["btrdb aligned_windows"],
                "arrow_aligned": s["btrdb arrow_aligned_windows"],
            },
        )
    )
    print(line("btrdb aligned_windows", s["btrdb aligned_windows"]))
    print(line("btrdb arrow_aligned_windows", s["btrdb arrow_aligned_windows"]))
    print(
        line(
            "ours insert",
            s["ours insert"],
            points,
            {"arrow_insert": s["btrdb arrow_insert"], "insert": s["btrdb insert (tuples)"]},
        )
    )
    print(line("btrdb arrow_insert", s["btrdb arrow_insert"], points))
    print(line("btrdb insert (tuples)", s["btrdb insert (tuples)"], points))
    ratio = s["ours raw_values"].best / s["fetch only (transport, no decoding)"].best
    print(f"ours raw_values / fetch only: {ratio:.3f} (best), "
          f"{s['ours raw_values'].median / s['fetch only (transport, no decoding)'].median:.3f} (median)")
    print("bytes on the wire (to server / to client):")
    for name, (up, down) in result["wire"].items():
        print(f"  {name:<30} {up / 1e6:9.2f} MB / {down / 1e6:9.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--skip-btrdb-values", action="store_true", help="skip btrdb's slow values() calls")
    parser.add_argument(
        "--only-read", action="store_true", help="only the raw reads and the fetch-only floor"
    )
    args = parser.parse_args()
    results = {}
    for compression in ("gzip", "none"):
        with serve(compression) as endpoint:
            results[compression] = measure(endpoint, args)
    if args.only_read:
        report_read("server --compression gzip", results["gzip"], args.points)
        report_read("server without compression", results["none"], args.points)
        return
    report("server --compression gzip", results["gzip"], args.points)
    report("server without compression", results["none"], args.points)
    print("\nwith / without compression (best wall time, bytes to the client):")
    for name in ("ours raw_values", "btrdb arrow_values", "ours aligned_windows", "ours insert"):
        g, p = results["gzip"]["samples"][name], results["none"]["samples"][name]
        wg, wp = results["gzip"]["wire"].get(name), results["none"]["wire"].get(name)
        wire = f", bytes {wg[1] / wp[1]:.2f}x down / {wg[0] / wp[0]:.2f}x up" if wg and wp else ""
        print(f"  {name:<30} time {g.best / p.best:.2f}x{wire}")


if __name__ == "__main__":
    main()
