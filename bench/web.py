"""Web-service throughput: the guide's example apps against the official btrdb client in a threadpool.

Starts ``pingthings serve`` (one stream of ``--points`` points at 1 kHz), then, for each app, serves
it in a subprocess, warms it up and drives one route with ``--concurrency`` concurrent keep-alive
requests (httpx, from this process) for ``--seconds``:

* ``async/uvicorn``: ``docs/examples/web/async_app.py`` (AsyncClient) on uvicorn (asyncio);
* ``async/hypercorn-trio``: the same app on hypercorn with trio;
* ``sync/uvicorn``: ``docs/examples/web/sync_app.py`` (sync Client from ``def`` endpoints);
* ``btrdb/uvicorn``: ``bench/web_apps/btrdb_app.py``, the same routes on ``btrdb`` (grpcio) in
  FastAPI's thread pool.

Routes: ``count`` (one small call) and ``windows`` (aligned windows, about 90 rows of JSON). Each
round runs the apps in turn, the order reversed every other round. Printed per app and route:
requests per second (best and median over rounds), p50 and p99 latency and peak app RSS
(VmHWM from /proc) of the best round, and the count of non-200 answers or transport errors.

    python bench/web.py --seconds 3 --rounds 1          # quick check
    python bench/web.py                                 # the figures in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pingthings.timeseries as pt  # noqa: E402
from tests.web.asgi_process import AppProcess, serve_app  # noqa: E402
from tests.web.restartable import RestartableServer  # noqa: E402

APPS = {
    "async/uvicorn": ("uvicorn", "async_app"),
    "async/hypercorn-trio": ("hypercorn-trio", "async_app"),
    "sync/uvicorn": ("uvicorn", "sync_app"),
    "btrdb/uvicorn": ("uvicorn", "btrdb_app"),
}
WINDOW_PW = 30  # ~1.07 s windows


@dataclass
class Run:
    """One app, one route, one round."""

    rps: float
    p50_ms: float
    p99_ms: float
    peak_rss_mib: float
    failures: int
    kinds: dict[str, int]


def _vm(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (hypercorn serves from a worker process of its own)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            pending.extend(int(child) for child in children)
    return found


def _peak_rss(pid: int) -> int:
    """The largest peak RSS (VmHWM) among the app's processes: the one that runs the app."""
    return max(_vm(p, "VmHWM") for p in _descendants(pid))


async def _drive(app: AppProcess, path: str, concurrency: int, seconds: float) -> Run:
    latencies: list[float] = []
    kinds: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=app.url, timeout=60, limits=limits) as http:
        for _ in range(20):  # warm up: connections, Info, caches
            await http.get(path)
        end = time.monotonic() + seconds
        started = time.monotonic()

        async def worker() -> None:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                try:
                    status = (await http.get(path)).status_code
                except httpx.TransportError as exc:
                    kinds[type(exc).__name__] += 1
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    kinds[f"HTTP {status}"] += 1

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        elapsed = time.monotonic() - started
    latencies.sort()
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3) if latencies else (
        lambda q: float("nan"))
    return Run(len(latencies) / elapsed, pick(0.50), pick(0.99), _peak_rss(app.process.pid) / 2**20,
               sum(kinds.values()), dict(kinds))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--apps", default=",".join(APPS))
    parser.add_argument("--routes", default="count,windows")
    args = parser.parse_args()
    apps = args.apps.split(",")
    routes = args.routes.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        platform = RestartableServer(Path(tmp) / "data")
        platform.start()
        try:
            with pt.connect(endpoint=platform.endpoint) as conn:
                stream = conn.create(uuid.uuid4(), "bench/web", {"name": "pmu"})
                times = np.arange(args.points, dtype=np.int64) * 1_000_000 + 1_000_000_000_000_000_000
                stream.insert((times, np.sin(np.arange(args.points) / 100.0)))
            start, end = int(times[0]), int(times[-1]) + 1
            paths = {
                "count": f"/streams/{stream.uuid}/count",
                "windows": f"/streams/{stream.uuid}/windows?start={start}&end={end}&pointwidth={WINDOW_PW}",
            }
            env = {"BTRDB_ENDPOINTS": platform.endpoint, "APP_REQUEST_DEADLINE": "60"}
            results: dict[tuple[str, str], list[Run]] = {}
            for round_no in range(args.rounds):
                order = apps if round_no % 2 == 0 else list(reversed(apps))
                for name in order:
                    server, module = APPS[name]
                    with serve_app(server, env, module, module_dirs=[ROOT / "bench" / "web_apps"]) as app:
                        for route in routes:
                            run = anyio.run(_drive, app, paths[route], args.concurrency, args.seconds)
                            results.setdefault((name, route), []).append(run)
                            print(f"  round {round_no + 1} {name:22} {route:8} {run.rps:7.1f} req/s "
                                  f"p50 {run.p50_ms:7.1f} ms p99 {run.p99_ms:7.1f} ms "
                                  f"rss {run.peak_rss_mib:6.1f} MiB failures {run.failures} "
                                  f"{run.kinds or ''}", flush=True)
        finally:
            platform.stop()

    print(f"\n{args.concurrency} concurrent requests, {args.seconds:g} s a run, {args.rounds} rounds")
    print(f"{'app':22} {'route':8} {'best req/s':>10} {'median':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'RSS MiB':>8} {'fail':>5}")
    for route in routes:
        for name in apps:
            runs = results[(name, route)]
            best = max(runs, key=lambda r: r.rps)
            median = statistics.median(r.rps for r in runs)
            print(f"{name:22} {route:8} {best.rps:10.1f} {median:8.1f} {best.p50_ms:8.1f} {best.p99_ms:8.1f} "
                  f"{best.peak_rss_mib:8.1f} {sum(r.failures for r in runs):5d}")


if __name__ == "__main__":
    main()
