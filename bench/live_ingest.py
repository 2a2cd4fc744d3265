"""Continuous ingest: N streams at 120 Hz, one insert of one second (120 points) per stream at a time.

Each scenario starts a fresh ``pingthings serve`` process (so its CPU time is its own), drives it
with one client, stops it cleanly (SIGTERM) and then measures the data directory:

* ``seq-sync``: the synchronous ``pingthings.timeseries`` client, one insert after another, round
  robin over the N streams, as fast as the server acknowledges (sustained inserts/s). The seconds
  of data are made before the clock starts, so the rate is that of the insert calls alone;
* ``seq-btrdb``: the same with the official ``btrdb`` client (grpcio), ``Stream.insert`` of tuples
  (also made beforehand);
* ``live-async``: the async client in real time: every stream inserts its next second once per
  wall-clock second (the N inserts spread evenly over the second), for ``--duration`` seconds;
* ``live-burst``: the same, but every stream inserts its second at the start of each wall-clock
  second, all at once (as a data concentrator forwards a second of many PMUs).

Printed per scenario: inserts/s and points/s, p50/p99 acknowledgement latency, the server's CPU
time per insert (and, in brackets, the part of it spent in the event loop's thread: the rest ran
in other threads, on the other core if there is one), the peak size of the SQLite WAL files and
of the ingest journal while running, and disk bytes per point of the engine's files after the
clean stop, next to a bulk load of the same points (500 000-point inserts) into another fresh
server.

The signal: 120 Hz with +-2 us uniform time jitter; values ``round(7200 + 3 sin + drift + N(0,
0.05), 3)``: the noisy decimal PMU signal of issue 13.

Usage::

    python bench/live_ingest.py --streams 1 --inserts 3000                 # the issue's first target
    python bench/live_ingest.py --streams 100 --inserts 3000 --duration 30
    python bench/live_ingest.py --streams 1000 --duration 20 --scenarios live-async
    python bench/live_ingest.py --streams 1 --buffer-points 0              # every insert commits (as before)
    PYTHONPATH=old/src python bench/live_ingest.py --plain-serve           # an older checkout, for "before"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", DeprecationWarning)

RATE = 120
PERIOD_NS = 1_000_000_000 // RATE
T0 = 1_700_000_000 * 10**9
_POOL = 1 << 20
_RNG = np.random.default_rng(13)
_NOISE = _RNG.normal(0.0, 0.05, _POOL)
_JITTER = _RNG.integers(-2000, 2001, _POOL)
_GRID = np.arange(RATE, dtype=np.int64) * PERIOD_NS
BULK_BATCH = 500_000


def second_of(stream: int, second: int) -> tuple[np.ndarray, np.ndarray]:
    """The 120 points stream ``stream`` records in second ``second`` (deterministic)."""
    off = (stream * 7919 + second * RATE) % (_POOL - RATE)
    t = T0 + second * 1_000_000_000 + _GRID + _JITTER[off : off + RATE]
    phase = (second + _GRID / 1e9) * 2 * np.pi / 7 + stream
    v = 7200 + 3 * np.sin(phase) + 0.01 * second / 60 + _NOISE[off : off + RATE]
    return t, np.round(v, 3)


def _cpu_of(stat: Path) -> float:
    """User + system CPU seconds from a /proc ``stat`` file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """A ``pingthings serve`` child process on a fresh data directory."""

    def __init__(self, data: Path, buffer_points: int | None, buffer_age: float) -> None:
        self.data = data
        cmd = [sys.executable, "-m", "pingthings.cli.main", "serve", "--data", str(data)]
        cmd += ["--listen", "127.0.0.1:0"]
        if buffer_points is not None:
            cmd += ["--buffer-points", str(buffer_points), "--buffer-age", str(buffer_age)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.endpoint = line.strip().rsplit(" ", 1)[-1]

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (every thread, live or ended)."""
        return _cpu_of(Path(f"/proc/{self.proc.pid}/stat"))

    def loop_cpu_seconds(self) -> float:
        """CPU time of the server's main thread, the one that runs the event loop."""
        return _cpu_of(Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/stat"))

    def stop(self) -> None:
        """Clean stop (SIGTERM: buffers are merged, files closed)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(300)


class DiskSampler(threading.Thread):
    """Samples the sizes of the WAL files and of the journal every 50 ms; keeps the peaks."""

    def __init__(self, data: Path) -> None:
        super().__init__(daemon=True)
        self.data = data
        self.peak_wal = 0
        self.peak_journal = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.05):
            wal = journal = 0
            for f in self.data.iterdir():
                with contextlib.suppress(OSError):
                    size = f.stat().st_size
                    if ".journal." in f.name:
                        journal += size
                    elif f.name.endswith("-wal"):
                        wal += size
            self.peak_wal = max(self.peak_wal, wal)
            self.peak_journal = max(self.peak_journal, journal)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def engine_bytes(data: Path) -> int:
    """Bytes of the engine's files (blocks, their WAL, the journal) in a data directory."""
    return sum(f.stat().st_size for f in data.iterdir() if f.name.startswith("engine."))


@dataclass
class Result:
    """What one scenario measured."""

    label: str
    inserts: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    loop_cpu: float = 0.0
    peak_wal: int = 0
    peak_journal: int = 0
    disk: int = 0
    points: int = 0
    late: int = 0
    #: perf_counter time the timed part began, when a driver prepared its data first (else None).
    started: float | None = None

    def line(self, bulk_bpp: float | None) -> str:
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1e3
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
        bpp = self.disk / self.points
        ratio = f" ({bpp / bulk_bpp:.2f}x bulk)" if bulk_bpp else ""
        late = f"  late {self.late}" if self.late else ""
        return (
            f"{self.label:<11} {self.inserts / self.seconds:8.0f} ins/s"
            f" {self.points / self.seconds / 1e3:8.1f} kpt/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms"
            f"  server cpu {self.server_cpu / self.inserts * 1e6:6.0f} us/ins"
            f" (loop {self.loop_cpu / self.inserts * 1e6:4.0f})"
            f"  WAL peak {self.peak_wal / 2**20:6.1f} MiB  journal peak {self.peak_journal / 2**20:5.1f} MiB"
            f"  disk {bpp:5.2f} B/pt{ratio}{late}"
        )


def run_scenario(
    label: str, args: argparse.Namespace, drive: Callable[[str, list[uuid.UUID], Result], None]
) -> Result:
    """Fresh server, create the streams, run ``drive``, stop cleanly, measure."""
    result = Result(label)
    with tempfile.TemporaryDirectory(prefix="pt-live-", dir=args.tmp) as tmp:
        data = Path(tmp)
        server = ServerProcess(data, None if args.plain_serve else args.buffer_points, args.buffer_age)
        try:
            uuids = [uuid.uuid4() for _ in range(args.streams)]
            import btrdb

            db = btrdb.connect(server.endpoint)
            for i, u in enumerate(uuids):
                db.create(u, "bench/live", tags={"name": f"s{i}"})
            sampler = DiskSampler(data)
            sampler.start()
            cpu0, loop0 = server.cpu_seconds(), server.loop_cpu_seconds()
            wall0 = time.perf_counter()
            drive(server.endpoint, uuids, result)
            result.seconds = time.perf_counter() - (wall0 if result.started is None else result.started)
            result.server_cpu = server.cpu_seconds() - cpu0
            result.loop_cpu = server.loop_cpu_seconds() - loop0
            sampler.stop()
            result.peak_wal, result.peak_journal = sampler.peak_wal, sampler.peak_journal
        finally:
            server.stop()
        result.disk = engine_bytes(data)
    return result


def bulk_bytes_per_point(args: argparse.Namespace, seconds: int) -> float:
    """Disk B/pt after loading the same points (``seconds`` per stream) in 500k-point inserts."""
    with tempfile.TemporaryDirectory(prefix="pt-bulk-", dir=args.tmp) as tmp:
        data = Path(tmp)
        server = ServerProcess(data, None if args.plain_serve else args.buffer_points, args.buffer_age)
        points = 0
        try:
            import pingthings.timeseries as pt

            with pt.connect(endpoint=server.endpoint) as client:
                for i in range(args.streams):
                    stream = client.create(uuid.uuid4(), "bench/bulk", {"name": f"s{i}"})
                    parts = [second_of(i, s) for s in range(seconds)]
                    t = np.concatenate([p[0] for p in parts])
                    v = np.concatenate([p[1] for p in parts])
                    for lo in range(0, t.size, BULK_BATCH):
                        stream.insert((t[lo : lo + BULK_BATCH], v[lo : lo + BULK_BATCH]))
                    points += t.size
        finally:
            server.stop()
        return engine_bytes(data) / points


def _seconds(streams: int, inserts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The data of ``inserts`` inserts, round robin over ``streams`` streams (made before timing)."""
    return [second_of(k % streams, k // streams) for k in range(inserts)]


def _timed_inserts(result: Result, inserters: list[Callable[[Any], Any]], batches: list[Any]) -> None:
    """Insert ``batches`` one after another, round robin over ``inserters``; the clock starts here."""
    latencies = result.latencies
    clock = time.perf_counter
    result.started = clock()
    for k, data in enumerate(batches):
        t0 = clock()
        inserters[k % len(inserters)](data)
        latencies.append(clock() - t0)
    result.points += RATE * len(batches)
    result.inserts = len(batches)


def sequential_pingthings(inserts: int) -> Callable[[str, list[uuid.UUID], Result], None]:
    """Sync pingthings client, one insert after another, round robin over the streams."""

    def drive(endpoint: str, uuids: list[uuid.UUID], result: Result) -> None:
        import pingthings.timeseries as pt

        with pt.connect(endpoint=endpoint) as client:
            streams = [client.stream_from_uuid(u) for u in uuids]
            _timed_inserts(result, [s.insert for s in streams], _seconds(len(streams), inserts))

    return drive


def sequential_btrdb(inserts: int) -> Callable[[str, list[uuid.UUID], Result], None]:
    """The official btrdb client's ``Stream.insert`` (list of tuples), one after another."""

    def drive(endpoint: str, uuids: list[uuid.UUID], result: Result) -> None:
        import btrdb

        db = btrdb.connect(endpoint)
        streams = [db.stream_from_uuid(u) for u in uuids]
        seconds = _seconds(len(streams), inserts)
        pairs = [list(zip(t.tolist(), v.tolist(), strict=True)) for t, v in seconds]
        _timed_inserts(result, [s.insert for s in streams], pairs)

    return drive


def live_async(duration: int, spread: bool = True) -> Callable[[str, list[uuid.UUID], Result], None]:
    """Async pingthings client in real time: each stream inserts its next second once a second,
    the N streams spread evenly over the second (``spread``) or all at its start."""

    def drive(endpoint: str, uuids: list[uuid.UUID], result: Result) -> None:
        import pingthings.timeseries as pt

        async def main() -> None:
            client = await pt.AsyncClient.connect(endpoint=endpoint, concurrency_limit=len(uuids))
            try:
                streams = [await client.stream_from_uuid(u) for u in uuids]
                start = time.perf_counter() + 0.5
                n = len(streams)

                async def feed(i: int) -> None:
                    for second in range(duration):
                        due = start + second + (i / n if spread else 0.0)
                        delay = due - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        elif delay < -0.5:
                            result.late += 1
                        data = second_of(i, second)
                        t0 = time.perf_counter()
                        await streams[i].insert(data)
                        result.latencies.append(time.perf_counter() - t0)
                        result.points += RATE
                        result.inserts += 1

                async with asyncio.TaskGroup() as group:
                    for i in range(n):
                        group.create_task(feed(i))
            finally:
                await client.close()

        asyncio.run(main())

    return drive


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1, help="number of streams N (default 1)")
    parser.add_argument(
        "--inserts", type=int, default=3000, help="inserts of the sequential scenarios (default 3000)"
    )
    parser.add_argument(
        "--duration", type=int, default=20, help="seconds of the live-async scenario (default 20)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each scenario, alternating order (default 1)"
    )
    parser.add_argument("--scenarios", default="seq-sync,seq-btrdb,live-async", help="comma-separated list")
    parser.add_argument(
        "--buffer-points", type=int, default=32_768, help="server --buffer-points (0: no buffering)"
    )
    parser.add_argument("--buffer-age", type=float, default=30.0, help="server --buffer-age in seconds")
    parser.add_argument(
        "--plain-serve", action="store_true", help="pass no buffering options (a version without them)"
    )
    parser.add_argument("--tmp", default=None, help="where the data directories go (default: system temp)")
    args = parser.parse_args()

    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    makers: dict[str, Callable[[], Callable[[str, list[uuid.UUID], Result], None]]] = {
        "seq-sync": lambda: sequential_pingthings(args.inserts),
        "seq-btrdb": lambda: sequential_btrdb(args.inserts),
        "live-async": lambda: live_async(args.duration),
        "live-burst": lambda: live_async(args.duration, spread=False),
    }
    print(
        f"N={args.streams} streams at {RATE} Hz, {RATE} points an insert; "
        f"buffer-points {args.buffer_points}, "
        f"buffer-age {args.buffer_age} s; cores {os.cpu_count()}; other work may share the machine"
    )
    results: dict[str, list[Result]] = {name: [] for name in wanted}
    for rep in range(args.repeat):
        order = wanted if rep % 2 == 0 else wanted[::-1]
        for name in order:
            results[name].append(run_scenario(name, args, makers[name]()))
    seconds = {
        "seq-sync": -(-args.inserts // args.streams),
        "seq-btrdb": -(-args.inserts // args.streams),
        "live-async": args.duration,
        "live-burst": args.duration,
    }
    for name in wanted:
        bulk = bulk_bytes_per_point(args, seconds[name])
        runs = sorted(results[name], key=lambda r: -r.inserts / r.seconds)
        for tag, run in (("best", runs[0]), ("median", runs[len(runs) // 2])):
            print(f"[{tag:<6}] {run.line(bulk)}")
        print(f"         bulk load of the same points: {bulk:.2f} B/pt")
        if len(runs) > 1:
            rates = [r.inserts / r.seconds for r in runs]
            print(
                f"         all runs: {', '.join(f'{x:.0f}' for x in rates)} ins/s"
                f" (median {statistics.median(rates):.0f})"
            )


if __name__ == "__main__":
    main()
