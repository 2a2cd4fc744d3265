"""Unary call latency: the Info RPC through every client, against the same embedded server.

Usage: ``python bench/client_info.py [--calls N] [--repeats R] [--endpoint HOST:PORT]``.

Without ``--endpoint`` an embedded server is started in a separate process (so the server's work
does not share the client's interpreter) on a free port of 127.0.0.1, and stopped at the end.
Clients measured in ``R`` interleaved rounds (each round runs every client once, for ``N`` sequential
Info calls after a short warm-up on a fresh connection; the order rotates from round to round, so
a machine whose speed drifts weighs on every client alike):

* our sync ``Client`` (each call crosses to its event-loop thread and back);
* our ``AsyncClient`` on asyncio and on trio;
* the official ``btrdb`` client (grpcio), when it is installed.

Prints the best and the median over the rounds of the µs per call (wall clock) and of the client
process's CPU µs per call (``time.process_time``), the steadier figure on a busy machine, with the
ratio of that CPU to btrdb's; and, when the server runs in its own process, the server's CPU µs
per call (median over the rounds, from ``/proc/<pid>/stat``, warm-up included, 10 ms clock ticks).

``--concurrent K`` also measures throughput with K calls in flight (K tasks on one AsyncClient,
K threads sharing one sync Client, K threads sharing one btrdb connection).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio

from pingthings.timeseries import AsyncClient, Client
from pingthings.timeseries.exceptions import ConnectionError

Result = tuple[float, float]  # (wall µs per call, CPU µs per call)

#: Process id of the server started by :func:`server_process` (None: an external server).
SERVER_PID: int | None = None


def server_cpu() -> float | None:
    """CPU seconds (user + system, all threads) used so far by the server process, or None."""
    if SERVER_PID is None:
        return None
    try:
        with open(f"/proc/{SERVER_PID}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_server_cpu(calls: int, run: Callable[[], Result | None]) -> tuple[Result | None, float | None]:
    """Run one client's measurement; also return the server's CPU µs per call over it (warm-up included)."""
    before = server_cpu()
    result = run()
    after = server_cpu()
    if result is None or before is None or after is None:
        return result, None
    return result, (after - before) / calls * 1e6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process() -> Iterator[str]:
    """Run ``python -m pingthings.server`` on a free port; yield its endpoint once it answers."""
    global SERVER_PID
    endpoint = f"127.0.0.1:{_free_port()}"
    with tempfile.TemporaryDirectory() as data:
        command = [sys.executable, "-m", "pingthings.server", "--data", data, "--listen", endpoint]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        SERVER_PID = proc.pid
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                    )
                try:
                    Client.connect(endpoint=endpoint, connect_timeout=1.0).close()
                    break
                except ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)  # polling for readiness, outside any measurement
            yield endpoint
        finally:
            SERVER_PID = None
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _timed(calls: int, repeats: int, run_once: Callable[[], None]) -> Result:
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run_once()
        walls.append((time.perf_counter() - wall) / calls * 1e6)
        cpus.append((time.process_time() - cpu) / calls * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def bench_sync(endpoint: str, calls: int, repeats: int) -> Result:
    with Client.connect(endpoint=endpoint) as conn:
        for _ in range(min(calls, 50)):
            conn.info()

        def once() -> None:
            for _ in range(calls):
                conn.info()

        return _timed(calls, repeats, once)


def bench_async(endpoint: str, calls: int, repeats: int, backend: str) -> Result:
    async def main() -> Result:
        async with await AsyncClient.connect(endpoint=endpoint) as client:
            for _ in range(min(calls, 50)):
                await client.info()
            walls, cpus = [], []
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    await client.info()
                walls.append((time.perf_counter() - wall) / calls * 1e6)
                cpus.append((time.process_time() - cpu) / calls * 1e6)
            return statistics.median(walls), statistics.median(cpus)

    return anyio.run(main, backend=backend)


def bench_btrdb(endpoint: str, calls: int, repeats: int) -> Result | None:
    try:
        import warnings

        import btrdb
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = btrdb.connect(endpoint)
    for _ in range(min(calls, 50)):
        db.info()

    def once() -> None:
        for _ in range(calls):
            db.info()

    try:
        return _timed(calls, repeats, once)
    finally:
        with contextlib.suppress(Exception):
            db.ep.channel.close()  # type: ignore[attr-defined]


def throughput_sync(endpoint: str, calls: int, workers: int) -> float:
    with (
        Client.connect(endpoint=endpoint, concurrency_limit=workers) as conn,
        ThreadPoolExecutor(workers) as pool,
    ):
        list(pool.map(lambda _: conn.info(), range(workers)))
        start = time.perf_counter()
        list(pool.map(lambda _: conn.info(), range(calls)))
        return calls / (time.perf_counter() - start)


def throughput_async(endpoint: str, calls: int, workers: int, backend: str) -> float:
    async def main() -> float:
        async with await AsyncClient.connect(endpoint=endpoint, concurrency_limit=workers) as client:
            await client.info()
            per_task = max(1, calls // workers)

            async def worker() -> None:
                for _ in range(per_task):
                    await client.info()

            start = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(workers):
                    group.start_soon(worker)
            return per_task * workers / (time.perf_counter() - start)

    return anyio.run(main, backend=backend)


def throughput_btrdb(endpoint: str, calls: int, workers: int) -> float | None:
    try:
        import warnings

        import btrdb
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = btrdb.connect(endpoint)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: db.info(), range(workers)))
        start = time.perf_counter()
        list(pool.map(lambda _: db.info(), range(calls)))
        return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential Info calls per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the median is printed")
    parser.add_argument("--endpoint", help="use this running server instead of starting one")
    parser.add_argument("--concurrent", type=int, default=0, help="also measure K calls in flight")
    args = parser.parse_args()
    if args.calls < 1 or args.repeats < 1:
        parser.error("--calls and --repeats must be at least 1")

    with contextlib.ExitStack() as stack:
        endpoint = args.endpoint or stack.enter_context(server_process())
        calls, rounds = args.calls, args.repeats
        print(f"Info latency against {endpoint}: {rounds} interleaved rounds x {calls} calls")
        clients: list[tuple[str, Callable[[], Result | None]]] = [
            ("pingthings Client (sync)", lambda: bench_sync(endpoint, calls, 1)),
            ("pingthings AsyncClient on asyncio", lambda: bench_async(endpoint, calls, 1, "asyncio")),
            ("pingthings AsyncClient on trio", lambda: bench_async(endpoint, calls, 1, "trio")),
            ("btrdb 5.x (grpcio), official", lambda: bench_btrdb(endpoint, calls, 1)),
        ]
        runs: dict[str, list[tuple[Result, float | None]]] = {label: [] for label, _ in clients}
        for r in range(rounds):
            k = r % len(clients)
            for label, run in clients[k:] + clients[:k]:
                result, server = with_server_cpu(calls + min(calls, 50), run)
                if result is not None:
                    runs[label].append((result, server))
        theirs = [c for (_, c), _ in runs["btrdb 5.x (grpcio), official"]]
        base = (min(theirs), statistics.median(theirs)) if theirs else None
        for label, _ in clients:
            got = runs[label]
            if not got:
                print(f"{label:<36} (not installed)")
                continue
            walls = [w for (w, _), _ in got]
            cpus = [c for (_, c), _ in got]
            servers = [x for _, x in got if x is not None]
            line = (
                f"{label:<36} wall {min(walls):7.1f} best {statistics.median(walls):7.1f} median µs/call"
                f"   client CPU {min(cpus):7.1f} best {statistics.median(cpus):7.1f} median"
            )
            if base is not None:
                line += f" ({min(cpus) / base[0]:.2f}x / {statistics.median(cpus) / base[1]:.2f}x btrdb)"
            if servers:
                line += f"   server CPU {statistics.median(servers):6.1f}"
            print(line)
        if args.concurrent > 0:
            k, n = args.concurrent, args.calls * args.repeats
            print(f"Throughput with {k} calls in flight ({n} calls)")
            rates: list[tuple[str, float | None]] = [
                (f"pingthings Client, {k} threads", throughput_sync(endpoint, n, k)),
                (f"pingthings AsyncClient asyncio, {k} tasks", throughput_async(endpoint, n, k, "asyncio")),
                (f"pingthings AsyncClient trio, {k} tasks", throughput_async(endpoint, n, k, "trio")),
                (f"btrdb 5.x (grpcio), {k} threads", throughput_btrdb(endpoint, n, k)),
            ]
            for label, rate in rates:
                print(f"{label:<40} " + ("(not installed)" if rate is None else f"{rate:>9,.0f} calls/s"))


if __name__ == "__main__":
    main()
