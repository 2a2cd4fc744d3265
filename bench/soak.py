"""Soak: 64 concurrent clients with a mixed workload for a set time, then every acknowledged point
is checked.

The server runs in its own process (``python -m pingthings.server``) so its memory and open file
descriptors can be read from ``/proc``. The pingthings run has 64 workers split across a sync
``Client`` shared by threads, an ``AsyncClient`` on asyncio and one on trio; each worker owns a
stream and loops over inserts (1,000-point batches), raw reads, aligned windows, metadata updates
and SQL queries until the time is up. The btrdb run does the same mix with 64 threads of the
official client (grpcio) on their own streams. Runs alternate which goes first.

Prints, per run: calls/s, p50/p99 latency per call type, errors by type, the check of every
acknowledged point, and the server's RSS and open fds before, at peak and after.

Usage::

    python bench/soak.py [--seconds 10] [--repeat 1] [--workers 64] [--skip-btrdb]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", DeprecationWarning)

BATCH = 1000
MIX = (("insert", 4), ("raw", 3), ("windows", 2), ("metadata", 1), ("sql", 1))


@dataclass
class Tally:
    """What one run's workers did (shared by all of them, guarded by a lock)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latencies[op].append(seconds)

    def fail(self, op: str, exc: BaseException) -> None:
        with self.lock:
            self.errors[f"{op}: {type(exc).__name__}"] += 1


@dataclass
class Worker:
    """One client's stream and the points the server acknowledged for it."""

    uuid: uuid.UUID
    acked: dict[int, float] = field(default_factory=dict)
    next_time: int = 1_000_000_000

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        times = self.next_time + np.arange(BATCH, dtype=np.int64) * 1_000_000
        self.next_time += BATCH * 1_000_000
        return times, np.random.default_rng(self.next_time).normal(size=BATCH)


class ServerProcess:
    """The server in its own process, with /proc readings of its memory and file descriptors."""

    def __init__(self, data: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pingthings.server",
                "--data",
                str(data),
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if "listening on" not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        self.endpoint = line.strip().rsplit(" ", 1)[-1]
        self.peak_fds = 0
        self._watching = True
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while self._watching:
            self.peak_fds = max(self.peak_fds, self.fds())
            time.sleep(0.2)

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except OSError:
            return 0

    def stop(self) -> None:
        self._watching = False
        self.process.terminate()
        self.process.communicate(timeout=60)


def pick(rng: random.Random) -> str:
    return rng.choices([op for op, _ in MIX], weights=[w for _, w in MIX])[0]


# -- pingthings workers ------------------------------------------------------------------------


def sync_worker(client: Any, worker: Worker, tally: Tally, stop: list[float], seed: int) -> None:
    rng = random.Random(seed)
    stream = client.stream_from_uuid(worker.uuid)
    while time.monotonic() < stop[0]:
        op = pick(rng)
        started = time.perf_counter()
        try:
            if op == "insert":
                times, values = worker.batch()
                stream.insert((times, values))
                worker.acked.update(zip(times.tolist(), values.tolist(), strict=True))
            elif op == "raw":
                stream.raw_values(worker.next_time - 20 * BATCH * 1_000_000, worker.next_time)
            elif op == "windows":
                stream.aligned_windows(0, worker.next_time, 30)
            elif op == "metadata":
                stream.refresh_metadata()
                stream.update(annotations={"soak": str(rng.random())})
            else:
                client.sql_query("SELECT uuid, name FROM streams WHERE uuid = $1", [str(worker.uuid)])
        except Exception as exc:
            tally.fail(op, exc)
            continue
        tally.note(op, time.perf_counter() - started)


async def async_worker(client: Any, worker: Worker, tally: Tally, stop: list[float], seed: int) -> None:
    rng = random.Random(seed)
    stream = await client.stream_from_uuid(worker.uuid)
    while time.monotonic() < stop[0]:
        op = pick(rng)
        started = time.perf_counter()
        try:
            if op == "insert":
                times, values = worker.batch()
                await stream.insert((times, values))
                worker.acked.update(zip(times.tolist(), values.tolist(), strict=True))
            elif op == "raw":
                await stream.raw_values(worker.next_time - 20 * BATCH * 1_000_000, worker.next_time)
            elif op == "windows":
                await stream.aligned_windows(0, worker.next_time, 30)
            elif op == "metadata":
                await stream.refresh_metadata()
                await stream.update(annotations={"soak": str(rng.random())})
            else:
                await client.sql_query("SELECT uuid, name FROM streams WHERE uuid = $1", [str(worker.uuid)])
        except Exception as exc:
            tally.fail(op, exc)
            continue
        tally.note(op, time.perf_counter() - started)


def run_async_group(
    backend: str,
    endpoint: str,
    workers: list[Worker],
    tally: Tally,
    stop: list[float],
    ready: threading.Barrier,
) -> None:
    """Run ``workers`` as tasks of one AsyncClient on ``backend`` (in the calling thread)."""
    import anyio
    import anyio.to_thread

    from pingthings.timeseries import AsyncClient

    async def main() -> None:
        client = await AsyncClient.connect(endpoint=endpoint, concurrency_limit=len(workers))
        await anyio.to_thread.run_sync(ready.wait)  # the clock starts once every client is connected
        try:
            async with anyio.create_task_group() as tg:
                for i, worker in enumerate(workers):
                    tg.start_soon(async_worker, client, worker, tally, stop, hash((backend, i)))
        finally:
            await _maybe_await(client.close())

    anyio.run(main, backend=backend)


async def _maybe_await(value: Any) -> None:
    if isinstance(value, Awaitable):
        await value


def pingthings_run(endpoint: str, count: int, seconds: float) -> tuple[Tally, list[Worker], float]:
    import pingthings.timeseries as pt

    client = pt.connect(endpoint=endpoint, concurrency_limit=count)
    workers = [
        Worker(client.create(uuid.uuid4(), "soak/pingthings", {"name": f"w{i}-{uuid.uuid4().hex[:6]}"}).uuid)
        for i in range(count)
    ]
    tally = Tally()
    n_sync = count // 4
    n_asyncio = (count - n_sync) // 2
    groups = {
        "threads": workers[:n_sync],
        "asyncio": workers[n_sync : n_sync + n_asyncio],
        "trio": workers[n_sync + n_asyncio :],
    }
    stop = [float("inf")]
    ready = threading.Barrier(3)
    loops = [
        threading.Thread(
            target=run_async_group, args=(backend, endpoint, groups[backend], tally, stop, ready)
        )
        for backend in ("asyncio", "trio")
    ]
    for thread in loops:
        thread.start()
    ready.wait()
    started = time.monotonic()
    stop[0] = started + seconds
    threads = [
        threading.Thread(target=sync_worker, args=(client, w, tally, stop, i))
        for i, w in enumerate(groups["threads"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads + loops:
        thread.join()
    elapsed = time.monotonic() - started
    lost = verify(lambda w: _read_all(client.stream_from_uuid(w.uuid)), workers)
    client.close()
    tally.errors.update({f"verify: {k}": v for k, v in lost.items()})
    return tally, workers, elapsed


def _read_all(stream: Any) -> dict[int, float]:
    table = stream.raw_values(0, 2**60)
    times = table.column(0).cast("int64").to_pylist()
    return dict(zip(times, table.column(1).to_pylist(), strict=True))


# -- btrdb workers -------------------------------------------------------------------------------


def btrdb_worker(db: Any, worker: Worker, tally: Tally, stop: list[float], seed: int) -> None:
    rng = random.Random(seed)
    stream = db.stream_from_uuid(worker.uuid)
    while time.monotonic() < stop[0]:
        op = pick(rng)
        started = time.perf_counter()
        try:
            if op == "insert":
                times, values = worker.batch()
                stream.insert(list(zip(times.tolist(), values.tolist(), strict=True)))
                worker.acked.update(zip(times.tolist(), values.tolist(), strict=True))
            elif op == "raw":
                stream.values(worker.next_time - 20 * BATCH * 1_000_000, worker.next_time)
            elif op == "windows":
                stream.aligned_windows(0, worker.next_time, 30)
            elif op == "metadata":
                stream.refresh_metadata()
                stream.update(annotations={"soak": str(rng.random())})
            else:
                db.query("SELECT uuid, name FROM streams WHERE uuid = $1", [str(worker.uuid)])
        except Exception as exc:
            tally.fail(op, exc)
            continue
        tally.note(op, time.perf_counter() - started)


def btrdb_run(endpoint: str, count: int, seconds: float) -> tuple[Tally, list[Worker], float]:
    import btrdb

    db = btrdb.connect(endpoint)
    workers = [
        Worker(db.create(uuid.uuid4(), "soak/btrdb", {"name": f"b{i}-{uuid.uuid4().hex[:6]}"}).uuid)
        for i in range(count)
    ]
    tally = Tally()
    started = time.monotonic()
    stop = [started + seconds]
    threads = [
        threading.Thread(target=btrdb_worker, args=(db, w, tally, stop, i)) for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    def read(worker: Worker) -> dict[int, float]:
        points = db.stream_from_uuid(worker.uuid).values(0, 2**60)
        return {p.time: p.value for p, _ in points}

    lost = verify(read, workers)
    tally.errors.update({f"verify: {k}": v for k, v in lost.items()})
    return tally, workers, elapsed


# -- checking and reporting ----------------------------------------------------------------------


def verify(read: Callable[[Worker], dict[int, float]], workers: list[Worker]) -> collections.Counter[str]:
    """Read every worker's stream back; count acknowledged points missing or changed."""
    problems: collections.Counter[str] = collections.Counter()
    for worker in workers:
        stored = read(worker)
        for t, v in worker.acked.items():
            if t not in stored:
                problems["acknowledged point missing"] += 1
            elif stored[t] != v:
                problems["acknowledged point changed"] += 1
    return problems


def report(label: str, tally: Tally, workers: list[Worker], elapsed: float) -> float:
    calls = sum(len(v) for v in tally.latencies.values())
    rate = calls / elapsed
    acked = sum(len(w.acked) for w in workers)
    print(
        f"\n{label}: {calls:,} calls in {elapsed:.1f} s = {rate:,.0f} calls/s; {acked:,} points acknowledged"
    )
    for op, _ in MIX:
        lat = sorted(tally.latencies.get(op, []))
        if lat:
            p50 = statistics.median(lat) * 1e3
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
            print(f"  {op:<9} {len(lat):>7,} calls  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    if tally.errors:
        for kind, n in sorted(tally.errors.items()):
            print(f"  ERROR {kind}: {n}")
    else:
        print("  errors: none; every acknowledged point read back unchanged")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs, alternating order (default 1)")
    parser.add_argument("--workers", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--skip-btrdb", action="store_true", help="run only the pingthings clients")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pt-soak-") as data:
        server = ServerProcess(Path(data))
        try:
            rss_before, fds_before = server.status("VmRSS"), server.fds()
            print(
                f"server {server.endpoint} (own process); {args.workers} clients, "
                f"{args.seconds:g} s per run; RSS {rss_before >> 20} MiB, {fds_before} open fds before"
            )
            rates: dict[str, list[float]] = {"pingthings": [], "btrdb": []}
            for i in range(args.repeat):
                order = ["pingthings", "btrdb"] if i % 2 == 0 else ["btrdb", "pingthings"]
                for name in order:
                    if name == "btrdb" and args.skip_btrdb:
                        continue
                    run = pingthings_run if name == "pingthings" else btrdb_run
                    tally, workers, elapsed = run(server.endpoint, args.workers, args.seconds)
                    label = (
                        f"{name} (threads + asyncio + trio)"
                        if name == "pingthings"
                        else "btrdb 64 threads (grpcio)"
                    )
                    rates[name].append(report(f"run {i + 1} {label}", tally, workers, elapsed))
            print()
            for name, values in rates.items():
                if values:
                    print(
                        f"{name:<11} calls/s best {max(values):,.0f}  median {statistics.median(values):,.0f}"
                    )
            print(
                f"server RSS before {rss_before >> 20} MiB, peak {server.status('VmHWM') >> 20} MiB, "
                f"after {server.status('VmRSS') >> 20} MiB; open fds before {fds_before}, "
                f"peak {server.peak_fds}, after {server.fds()}"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
