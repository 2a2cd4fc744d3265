"""Cold reads, end to end: a freshly started server reads data it has never read before.

Every other read figure in ``bench/RESULTS.md`` comes from a warm block cache. Here the server is
restarted (a new child process on the same data directory) before every timed read, so its block
cache is empty; the OS page cache is warm (the SQLite file was just read by the previous round), as it
is on a server whose database fits in memory. It measures, with the synchronous
``pingthings.timeseries.Client`` and the official ``btrdb`` client taking turns to go first:

* one stream of ``--points`` points (a day of one 120 Hz channel is ~10^7): our
  ``Stream.raw_values`` against btrdb's ``Stream.arrow_values()``;
* ``--streams`` streams of ``--set-points`` points each: our ``StreamSet.raw_values`` (one table per
  stream) and ``StreamSet.raw_values_aligned`` (joined on time by the server) against btrdb's
  ``StreamSet.arrow_values()`` (joined by the server);
* two ``--points`` streams read in turn, A B A B, on one server with its default cache: the second
  read of each should be served from the cache;
* the engine alone, no gRPC: a freshly opened engine reads the stream (the chunked zero-copy read the
  server streams from, and the read into two numpy arrays);
* the breakdown of one cold read, stage by stage, each stage timed alone in this process, single
  threaded, for both read paths: RawBlocks (our client against our server: tree walk, SQLite fetch
  and messages on the server, the late admission of the sent blocks; checks and decode, Arrow and
  join on the client) and ArrowRawValues (btrdb, and our client against other servers: server tree
  walk, SQLite fetch, LZ4, decode, cache admission, chunk assembly and reply segments, thread
  hand-offs, the rest of the server's CPU being sending; client receive, Arrow, join).

Each line prints the best and median of ``--rounds`` rounds, in million points per second, with the
client's and the server's CPU time of the best run. The data directory is built once (``--data-dir``
keeps it for later runs). Validate small first::

    python bench/cold_read.py --points 200000 --set-points 50000 --streams 4 --rounds 2

Full size (the targets of issue 17: >= 25 Mpts/s and >= 1.2x btrdb for both reads, engine >= 40)::

    python bench/cold_read.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import pmu_signal  # noqa: E402  (bench/engine.py: the 120 Hz PMU signal)

ALL = (-(1 << 60), (3 << 60) - 1)
#: Uuids of the streams: the two long ones, then the set.
LONG = [uuid.UUID(int=1), uuid.UUID(int=2)]


def set_uuid(i: int) -> uuid.UUID:
    return uuid.UUID(int=100 + i)


# ------------------------------------------------------------------------------------------ server
def _serve(data_dir: str, cache_mb: int | None, ready: Any, stop: Any) -> None:
    from pingthings.server import Server

    kwargs = {} if cache_mb is None else {"cache_mb": cache_mb}
    with Server(data_dir, listen="127.0.0.1:0", **kwargs) as srv:
        ready.put(srv.endpoint)
        stop.wait()


def process_cpu(pid: int | None) -> float:
    """CPU seconds used so far by process ``pid`` (from /proc, clock-tick resolution)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(data_dir: Path, cache_mb: int | None = None) -> Iterator[tuple[str, int]]:
    """A fresh server process on ``data_dir``: yields ``(endpoint, pid)``."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(str(data_dir), cache_mb, ready, stop), daemon=True)
    proc.start()
    try:
        yield ready.get(timeout=120), proc.pid  # type: ignore[misc]
    finally:
        stop.set()
        proc.join(timeout=60)
        if proc.is_alive():
            proc.terminate()
            proc.join()


# ------------------------------------------------------------------------------------------ data
def build(data_dir: Path, n: int, k: int, m: int) -> None:
    """Two streams of ``n`` points and ``k`` streams of ``m`` points (120 Hz PMU signal)."""
    import pingthings.timeseries as pt

    marker = data_dir / "cold_read.json"
    want = {"points": n, "streams": k, "set_points": m}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    print(f"building {data_dir}: 2 x {n:,} + {k} x {m:,} points ...", flush=True)
    with server(data_dir) as (endpoint, _):
        conn = pt.connect(endpoint=endpoint)
        t, v = pmu_signal(max(n, m))
        names = [(u, n, f"long{i}") for i, u in enumerate(LONG)] + [
            (set_uuid(i), m, f"s{i}") for i in range(k)
        ]
        for u, size, name in names:
            s = conn.create(u, "bench/cold", {"name": name})
            for lo in range(0, size, 1_000_000):
                s.insert((t[lo : min(size, lo + 1_000_000)], v[lo : min(size, lo + 1_000_000)]))
        conn.close()
    marker.write_text(json.dumps(want))


# ------------------------------------------------------------------------------------------ timing
class Sample:
    """Wall, client-CPU and server-CPU seconds of each run of one measurement."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, float, float]] = []

    def run(self, fn: Callable[[], Any], server_pid: int | None = None) -> Any:
        s0, c0, w0 = process_cpu(server_pid), time.process_time(), time.perf_counter()
        out = fn()
        wall = time.perf_counter() - w0
        self.runs.append((wall, time.process_time() - c0, process_cpu(server_pid) - s0))
        return out

    def line(self, label: str, points: int, base: Sample | None = None, base_name: str = "") -> str:
        walls = [r[0] for r in self.runs]
        best = min(self.runs)
        median = statistics.median(walls)
        text = (
            f"{label:<46} {points / best[0] / 1e6:7.1f} Mpts/s best {points / median / 1e6:7.1f} median"
            f"  (wall {best[0] * 1e3:7.0f} ms, client cpu {best[1] * 1e3:5.0f} ms,"
            f" server cpu {best[2] * 1e3:5.0f} ms)"
        )
        if base is not None and base.runs:
            b_best = min(r[0] for r in base.runs)
            b_median = statistics.median(r[0] for r in base.runs)
            text += f"  {b_best / best[0]:4.2f}x {base_name} (median {b_median / median:4.2f}x)"
        return text


def rotated(calls: list[Any], round_: int) -> list[Any]:
    k = round_ % len(calls)
    return calls[k:] + calls[:k]


# ------------------------------------------------------------------------------------------ cases
def cold_call(
    work: Path,
    fn: Callable[[str, list[Any]], Callable[[], Any]],
    sample: Sample,
    check: Callable[[Any], None],
) -> None:
    """Start a fresh server, connect (untimed), time one cold read, close the client."""
    with server(work) as (endpoint, pid):
        clients: list[Any] = []
        read = fn(endpoint, clients)
        check(sample.run(read, pid))
        for client in clients:
            client.close()


def btrdb_connect(endpoint: str, clients: list[Any]) -> Any:
    """``btrdb.connect(endpoint)``, built step by step so that its grpc channel can be closed."""
    from btrdb.conn import BTrDB, Connection
    from btrdb.endpoint import Endpoint

    channel = Connection(endpoint).channel
    clients.append(channel)
    return BTrDB(Endpoint(channel))


def ours_stream(endpoint: str, clients: list[Any]) -> Callable[[], Any]:
    import pingthings.timeseries as pt

    conn = pt.connect(endpoint=endpoint)
    clients.append(conn)
    stream = conn.stream_from_uuid(LONG[0])
    return lambda: stream.raw_values(*ALL)


def btrdb_stream(endpoint: str, clients: list[Any]) -> Callable[[], Any]:
    db = btrdb_connect(endpoint, clients)
    stream = db.stream_from_uuid(LONG[0])
    return lambda: stream.arrow_values(*ALL)


def ours_set(k: int, aligned: bool) -> Callable[[str, list[Any]], Callable[[], Any]]:
    def open_(endpoint: str, clients: list[Any]) -> Callable[[], Any]:
        import pingthings.timeseries as pt

        conn = pt.connect(endpoint=endpoint)
        clients.append(conn)
        sset = conn.streamset_from_uuids([set_uuid(i) for i in range(k)])
        return (lambda: sset.raw_values_aligned(*ALL)) if aligned else (lambda: sset.raw_values(*ALL))

    return open_


def btrdb_set(k: int) -> Callable[[str, list[Any]], Callable[[], Any]]:
    def open_(endpoint: str, clients: list[Any]) -> Callable[[], Any]:
        from btrdb.stream import StreamSet

        db = btrdb_connect(endpoint, clients)
        sset = StreamSet([db.stream_from_uuid(set_uuid(i)) for i in range(k)]).filter(
            start=ALL[0], end=ALL[1]
        )
        return sset.arrow_values

    return open_


def engine_cold(work: Path, rounds: int, n: int) -> tuple[Sample, Sample]:
    from pingthings.server.engine import Engine

    pieces, arrays = Sample(), Sample()
    path = work / "engine.sqlite"
    u = LONG[0].bytes
    for _ in range(rounds):
        for sample, mode in rotated([(pieces, "pieces"), (arrays, "arrays")], _):
            engine = Engine(path)
            engine.latest_version(u)  # load the stream row (not part of a read)
            if mode == "pieces":
                got = sample.run(lambda e=engine: sum(c[2] for c in e.iter_raw_pieces(u, *ALL)[1]))
            else:
                got = sample.run(lambda e=engine: e.raw_values(u, *ALL)[1].size)
            assert got == n, got
            engine.close()
    return pieces, arrays


# ------------------------------------------------------------------------------------------ breakdown
def breakdown(work: Path, endpoint: str, n: int, e2e_server_cpu: float) -> list[tuple[str, float]]:
    """Seconds per stage of one cold read of LONG[0], each stage timed alone in this thread."""
    from pingthings.server.engine import Engine, query
    from pingthings.server.engine.blocks import BlockReader, _run_batches, _runs
    from pingthings.server.engine.decode_pool import ahead
    from pingthings.server.service.arrow_reply import raw_pieces_reply
    from pingthings.server.service.prefetch import prefetched
    from pingthings.wire.blocks.leaf_codec import LeafView, decode_views

    out: list[tuple[str, float]] = []
    engine = Engine(work / "engine.sqlite", cache_bytes=0)
    u = LONG[0].bytes
    root = engine._stream(u).state[1]

    def timed(label: str, fn: Callable[[], Any]) -> Any:
        t0 = time.process_time()
        got = fn()
        out.append((label, time.process_time() - t0))
        return got

    addrs, slots, counts = timed(
        "server: tree walk (internal nodes: fetch + decode)",
        lambda: query.leaves_with_counts(engine._reader, root, *ALL),
    )
    runs = _runs(addrs)
    batches = [addrs[runs[a:b]].tolist() for a, b in _run_batches(runs, counts, 128)]  # as reads cut them
    store = engine._store
    raws = timed("server: SQLite fetch of the leaf blocks", lambda: [store.read_blocks(b) for b in batches])
    views = timed(
        "server: LZ4 decompression",
        lambda: [[LeafView(r[a]) for a in b] for r, b in zip(raws, batches, strict=True)],
    )
    decoded = timed(
        "server: decode (byte planes, zigzag, running sums)", lambda: [decode_views(v) for v in views]
    )
    engine.close()

    cached = BlockReader(store.__class__(work / "engine.sqlite"), cache_bytes=1 << 40)
    fresh = [(t.copy(), x.copy()) for t, x in decoded]  # admission takes arrays nobody else holds
    timed(
        "server: cache admission (views of each batch)",
        lambda: [cached._keep(b, v, t, x) for b, v, (t, x) in zip(batches, views, fresh, strict=True)],
    )

    def assemble() -> int:
        chunks = query.iter_raw_pieces(cached, (addrs, slots, counts), *ALL, 50_000)
        return sum(1 for c in chunks if raw_pieces_reply(0, *c) is not None)

    replies = timed("server: chunks cut from blocks + reply segments", assemble)
    cached.store.close()

    async def handoffs(count: int) -> None:
        async for _ in prefetched(lambda: iter(range(count))):
            pass

    t0 = time.process_time()
    asyncio.run(handoffs(replies))
    hand = time.process_time() - t0
    t0 = time.process_time()
    for _ in ahead([lambda: None] * len(batches)):
        pass
    hand += time.process_time() - t0
    out.append(("server: thread hand-offs (prefetch queue, decode pool)", hand))
    stages = sum(s for label, s in out if label.startswith("server"))
    out.append(
        (
            "server: sending (h2, writev, loopback TCP) = cold-read CPU - above",
            max(0.0, e2e_server_cpu - stages),
        )
    )

    async def client_side() -> None:
        from pingthings._proto.v5api import ArrowRawValuesParams
        from pingthings.timeseries import AsyncClient
        from pingthings.timeseries._data_calls import (
            RAW_VALUES_SCHEMA,
            _arrow_envelope,
            _conform,
            _ipc_table,
            concat_raw,
        )
        from pingthings.timeseries._rpc import call_stream

        client = await AsyncClient.connect(endpoint=endpoint)
        req = ArrowRawValuesParams(uuid=LONG[0].bytes, start=ALL[0], end=ALL[1], version_major=0)
        t0 = time.process_time()
        payloads = []
        async with call_stream(client, "ArrowRawValues", req) as messages:
            async for payload in messages:
                payloads.append(payload)
        out.append(("client: receive (h2 frames into messages; server warm)", time.process_time() - t0))
        t0 = time.process_time()
        tables = [
            _conform(_ipc_table(_arrow_envelope(p, 4)[1], RAW_VALUES_SCHEMA), RAW_VALUES_SCHEMA)
            for p in payloads
        ]
        out.append(("client: Arrow (envelope + IPC to record batches)", time.process_time() - t0))
        t0 = time.process_time()
        table = concat_raw(tables)
        out.append(("client: join (chunks into one Table)", time.process_time() - t0))
        assert table.num_rows == n
        await client.close()

    asyncio.run(client_side())
    return out


def block_breakdown(work: Path, n: int) -> list[tuple[str, float]]:
    """Seconds per stage of one cold RawBlocks read of LONG[0] (what our client uses against our
    server), each stage timed alone in this thread."""
    from pingthings.server.engine import Engine, query
    from pingthings.server.service.arrow_reply import Segments
    from pingthings.server.service.raw_block_reply import raw_blocks_message
    from pingthings.timeseries import _raw_blocks
    from pingthings.timeseries._data_calls import concat_raw
    from pingthings.wire import arrow as wire_arrow

    out: list[tuple[str, float]] = []
    u = LONG[0].bytes

    def timed(label: str, fn: Callable[[], Any]) -> Any:
        t0 = time.process_time()
        got = fn()
        out.append((label, time.process_time() - t0))
        return got

    engine = Engine(work / "engine.sqlite", cache_bytes=1 << 34)
    root = engine._stream(u).state[1]
    walk = "server: tree walk (internal nodes: fetch + decode)"
    timed(walk, lambda: query.leaves_with_counts(engine._reader, root, *ALL))
    engine.close()
    engine = Engine(work / "engine.sqlite", cache_bytes=1 << 34)
    engine.latest_version(u)

    def produce() -> list[Any]:
        version, chunks = engine.iter_raw_stored(u, *ALL)
        return [raw_blocks_message(version, engine.block_format, c) for c in chunks]

    replies = timed("server: tree walk + SQLite fetch + pieces + messages (no decode)", produce)
    late = "server: late admission of the sent blocks (background, after the read)"
    timed(late, lambda: engine.admission_idle(120))
    engine.close()
    payloads = [r.join() if isinstance(r, Segments) else bytes(r) for r in replies]
    out.append(("bytes on the wire per point", sum(len(p) for p in payloads) / n / 1e3))
    reader = _raw_blocks._Reader(str(LONG[0]), *ALL)
    decode = "client: checks + LZ4 + decode into the result"
    segments = timed(decode, lambda: [seg for p in payloads for seg in reader.message(p)])
    join = "client: Arrow tables and join"
    tables = timed(join, lambda: concat_raw([wire_arrow.raw_table(*x) for x in segments]))
    assert tables.num_rows == n
    return out


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=10_000_000, help="points of each long stream")
    parser.add_argument("--streams", type=int, default=16, help="streams in the StreamSet case")
    parser.add_argument("--set-points", type=int, default=1_000_000, help="points per StreamSet stream")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each client reads first in turn)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the built data here (reused)")
    parser.add_argument(
        "--skip", default="", help="comma-separated cases to skip: single,set,alternating,engine,breakdown"
    )
    args = parser.parse_args()
    n, k, m = args.points, args.streams, args.set_points
    skip = set(filter(None, args.skip.split(",")))

    import btrdb

    with tempfile.TemporaryDirectory(prefix="pt-cold-") as tmp:
        data = args.data_dir or Path(tmp) / "data"
        build(data, n, k, m)
        work = Path(tmp) / "work"
        shutil.copytree(data, work)
        load = os.getloadavg()
        print(
            f"cold reads: 2 x {n:,} points, {k} x {m:,} points; {args.rounds} rounds; "
            f"btrdb {btrdb.__version__}; "
            f"server restarted before every timed read (block cache cold, OS page cache warm); "
            f"load average before: {load[0]:.1f} on {os.cpu_count()} CPUs"
        )

        def check_rows(rows: int) -> Callable[[Any], None]:
            def check(table: Any) -> None:
                got = sum(t.num_rows for t in table) if isinstance(table, list | dict) else table.num_rows
                assert got == rows, (got, rows)

            return check

        def check_set(tables: Any) -> None:
            got = sum(t.num_rows for t in (tables.values() if isinstance(tables, dict) else tables))
            assert got == m * k, got

        if "single" not in skip:
            ours, theirs = Sample(), Sample()
            calls = [(ours, ours_stream), (theirs, btrdb_stream)]
            for r in range(args.rounds):
                for sample, fn in rotated(calls, r):
                    cold_call(work, fn, sample, check_rows(n))
            print(f"\n# one stream, {n:,} points, cold")
            print(theirs.line("btrdb Stream.arrow_values()", n))
            print(ours.line("pingthings Stream.raw_values()", n, theirs, "arrow_values()"))

        if "set" not in skip:
            ours, aligned, theirs = Sample(), Sample(), Sample()
            calls = [(ours, ours_set(k, False)), (aligned, ours_set(k, True)), (theirs, btrdb_set(k))]
            for r in range(args.rounds):
                for sample, fn in rotated(calls, r):
                    check: Callable[[Any], None] = check_set if sample is ours else check_rows(m)
                    cold_call(work, fn, sample, check)
            print(f"\n# StreamSet, {k} x {m:,} points, cold")
            print(theirs.line("btrdb StreamSet.arrow_values() (joined)", k * m))
            print(ours.line("pingthings StreamSet.raw_values()", k * m, theirs, "arrow_values()"))
            print(aligned.line("pingthings StreamSet.raw_values_aligned()", k * m, theirs, "arrow_values()"))

        if "alternating" not in skip:
            import pingthings.timeseries as pt

            reads = [Sample() for _ in range(4)]
            for _ in range(args.rounds):
                with server(work) as (endpoint, pid):
                    conn = pt.connect(endpoint=endpoint)
                    streams = [conn.stream_from_uuid(u) for u in LONG]
                    for i, sample in enumerate(reads):
                        check_rows(n)(sample.run(lambda s=streams[i % 2]: s.raw_values(*ALL), pid))
                    conn.close()
            print(f"\n# two {n:,}-point streams read in turn (A B A B), default cache")
            for i, (label, sample) in enumerate(
                zip(["A first", "B first", "A second", "B second"], reads, strict=True)
            ):
                print(sample.line(f"pingthings Stream.raw_values(), {label}", n))
                del i

        if "engine" not in skip:
            pieces, arrays = engine_cold(work, args.rounds, n)
            print(f"\n# engine alone, {n:,} points, freshly opened engine (default cache)")
            print(pieces.line("Engine.iter_raw_pieces (what the server streams)", n))
            print(arrays.line("Engine.raw_values (into numpy)", n))

        if "breakdown" not in skip:
            probe, theirs = Sample(), Sample()
            cold_call(work, ours_stream, probe, check_rows(n))
            cold_call(work, btrdb_stream, theirs, check_rows(n))
            print(f"\n# breakdown of one cold read of {n:,} points (CPU ms, each stage alone, one thread)")
            print("## RawBlocks: our client against our server (stored blocks sent, the client decodes)")
            wall, client_cpu, server_cpu = probe.runs[0]
            rows = [
                ("end to end (our client), wall", wall),
                ("end to end, server CPU (and what of the late admission ran meanwhile)", server_cpu),
                ("end to end, client CPU", client_cpu),
                *block_breakdown(work, n),
            ]
            for label, seconds in rows:
                digits = 1 if "bytes" in label else 0
                print(f"{label:<72} {seconds * 1e3:7.{digits}f}")
            print("## ArrowRawValues: btrdb's arrow_values() (our client against servers without RawBlocks)")
            wall, client_cpu, server_cpu = theirs.runs[0]
            print(f"{'end to end (btrdb), wall':<72} {wall * 1e3:7.0f}")
            print(f"{'end to end, server CPU':<72} {server_cpu * 1e3:7.0f}")
            print(f"{'end to end, client CPU (btrdb)':<72} {client_cpu * 1e3:7.0f}")
            with server(work) as (endpoint, _):
                stages = breakdown(work, endpoint, n, theirs.runs[0][2])
            for label, seconds in stages:
                print(f"{label:<72} {seconds * 1e3:7.0f}")

if __name__ == "__main__":
    main()
