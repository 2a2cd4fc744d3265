"""pingthings.timeseries against the official btrdb client, both on one embedded server.

Measures, with the synchronous ``pingthings.timeseries.Client`` and with ``btrdb`` 5.34 (grpcio)
talking to the same embedded server:

* raw read of one stream (``Stream.raw_values`` vs btrdb ``values()`` and ``arrow_values()``);
* raw read of 16 streams through a StreamSet (per-stream tables vs btrdb ``StreamSet.values()``,
  and the time-aligned table ``raw_values_aligned`` vs btrdb ``StreamSet.arrow_values()``);
* insert of one stream (``Stream.insert`` of numpy arrays vs btrdb ``insert()`` of tuples and
  ``arrow_insert()``);
* the latency of 1,000 aligned windows (``aligned_windows`` vs btrdb ``aligned_windows()`` and
  ``arrow_aligned_windows()``).

Each line prints the best and median wall time of ``--repeat`` runs as points per second, the
process CPU time of the best run (this process, and the server's when it runs in a child process;
read from /proc in clock ticks, so about 10 ms resolution), and the speed-up of pingthings over
each btrdb method, best against best and (in brackets) median against median. In the read
tests the fast calls take turns going first, round by round, and each call's result is dropped
before the next call starts (a held ``values()`` result is millions of Python objects). btrdb's
``values()`` baselines take seconds of CPU per call and run afterwards, at most three times: a
CPU-heavy second in the calling thread just before a call slows the next fast read (ours more
than btrdb's, see ``bench/RESULTS.md``), so interleaving them would measure that instead. The server
runs in a child process (``--server thread`` puts it in this process instead, where it competes
with the clients for the GIL). Validate with a small size first::

    python bench/client.py --points 20000 --streams 4 --repeat 2

Full size (the targets: >= 10 M points/s raw, >= 30x values(), >= 1.5x arrow_values();
insert >= 3 M points/s and >= 5x insert())::

    python bench/client.py

Best-of-N reflects the machine with nothing in the way; the median what a caller typically sees
(btrdb's reads are bimodal on a 2-core machine, so the two can differ a lot); the default 15
runs keep both steady from one invocation to the next.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", DeprecationWarning)

#: Runs of btrdb's slow ``values()`` baselines (seconds each), measured after the fast calls.
SLOW_REPEAT = 3

T0 = 1_700_000_000_000_000_000
PERIOD = 8_333_333  # 120 Hz


# ------------------------------------------------------------------------------------------ server
def _serve(data_dir: str, ready: Any, stop: Any) -> None:
    from pingthings.server import Server

    with Server(data_dir, listen="127.0.0.1:0") as srv:
        ready.put(srv.endpoint)
        stop.wait()


#: Process id of the child-process server (None: in-process server, or none running).
SERVER_PID: int | None = None


def process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by process ``pid``, from /proc; None if unknown.

    The kernel counts in clock ticks (usually 10 ms), so single short runs are coarse.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def embedded_server(mode: str) -> Iterator[str]:
    """Start an embedded server (child process or thread) on 127.0.0.1; yield its endpoint.

    In child-process mode :data:`SERVER_PID` holds the child's pid while it runs.
    """
    global SERVER_PID
    with tempfile.TemporaryDirectory(prefix="pt-bench-client-") as data_dir:
        if mode == "thread":
            from pingthings.server import Server

            with Server(data_dir, listen="127.0.0.1:0") as srv:
                yield srv.endpoint
            return
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Queue(), ctx.Event()
        proc = ctx.Process(target=_serve, args=(data_dir, ready, stop), daemon=True)
        proc.start()
        try:
            endpoint = ready.get(timeout=60)
            SERVER_PID = proc.pid
            yield endpoint
        finally:
            SERVER_PID = None
            stop.set()
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()


# ------------------------------------------------------------------------------------------ timing
class Sample:
    """Wall and process-CPU seconds (this process and the child server, if any) of the runs of one
    measurement."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.server_cpus: list[float | None] = []

    def run(self, fn: Callable[[], Any]) -> Any:
        server = process_cpu(SERVER_PID)
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(time.process_time() - cpu)
        server_after = process_cpu(SERVER_PID)
        self.server_cpus.append(None if server is None or server_after is None else server_after - server)
        return result

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


def rate_line(label: str, points: int, s: Sample, baselines: dict[str, Sample] | None = None) -> str:
    """One result line: rates, CPU, and speed-up against each baseline (by best wall time, and by
    median wall time in brackets)."""
    best = s.walls.index(s.best)
    server = s.server_cpus[best]
    server_text = "" if server is None else f", server cpu {server * 1e3:6.0f} ms"
    line = (
        f"{label:<44} {points / s.best / 1e6:8.2f} M pts/s best {points / s.median / 1e6:8.2f} median"
        f"  (wall {s.best * 1e3:9.1f} ms, cpu {s.cpus[best] * 1e3:9.1f} ms{server_text})"
    )
    for name, b in (baselines or {}).items():
        line += f"  {b.best / s.best:6.1f}x {name} (median {b.median / s.median:.1f}x)"
    return line


def rotated(calls: list[Callable[..., None]], round_: int) -> list[Callable[..., None]]:
    """``calls`` rotated by ``round_``: over the rounds each call runs in every position, so none of
    them always follows the same neighbour (a slow ``values()`` leaves the server idle and the
    caches cold for whoever comes next)."""
    k = round_ % len(calls)
    return calls[k:] + calls[:k]


def latency_line(label: str, s: Sample, baselines: dict[str, Sample] | None = None) -> str:
    """One latency result line with speed-ups."""
    line = f"{label:<44} {s.best * 1e3:9.2f} ms best {s.median * 1e3:9.2f} ms median"
    for name, b in (baselines or {}).items():
        line += f"  {b.best / s.best:6.1f}x {name} (median {b.median / s.median:.1f}x)"
    return line


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000, help="points per stream (default 1 000 000)")
    parser.add_argument("--streams", type=int, default=16, help="streams in the StreamSet test (default 16)")
    parser.add_argument("--repeat", type=int, default=15, help="runs of each fast measurement (default 15)")
    parser.add_argument("--windows", type=int, default=1000, help="aligned windows per query (default 1000)")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    parser.add_argument("--skip-btrdb-values", action="store_true", help="skip btrdb's slow values() calls")
    args = parser.parse_args()

    import btrdb
    from btrdb.stream import StreamSet as BtrdbStreamSet

    import pingthings.timeseries as pt

    n, k, repeat = args.points, args.streams, args.repeat
    times = T0 + np.arange(n, dtype=np.int64) * PERIOD
    rng = np.random.default_rng(0)
    values = rng.normal(60.0, 5.0, size=n)
    start, end = int(times[0]), int(times[-1]) + 1
    tuples = list(zip(times.tolist(), values.tolist(), strict=True))
    table = pa.table({"time": pa.array(times).view(pa.timestamp("ns", tz="UTC")), "value": values})

    with embedded_server(args.server) as endpoint:
        conn = pt.connect(endpoint=endpoint)
        db = btrdb.connect(endpoint)
        info = conn.info()
        print(
            f"server {endpoint} ({args.server}), version {info['major_version']}.{info['minor_version']}; "
            f"{n:,} points per stream, {k} streams, {repeat} runs; btrdb {btrdb.__version__}; "
            f"arrow: pingthings {conn.get_async_client().arrow_enabled}, btrdb {db._ARROW_ENABLED}"
        )
        collection = f"bench/client/{uuid.uuid4().hex[:8]}"

        # ---- set up: k streams holding the same n points
        streams = [conn.create(uuid.uuid4(), collection, {"name": f"s{i}"}) for i in range(k)]
        setup = conn.streamset_from_uuids([s.uuid for s in streams])
        setup.insert({s.uuid: (times, values) for s in streams})
        ours = streams[0]
        theirs = db.stream_from_uuid(ours.uuid)

        # ---- raw read, one stream
        print("\n# raw read, 1 stream")
        r_ours, r_values, r_arrow = Sample(), Sample(), Sample()

        def read_ours() -> None:
            assert r_ours.run(lambda: ours.raw_values(start, end)).num_rows == n

        def read_arrow() -> None:
            assert r_arrow.run(lambda: theirs.arrow_values(start, end)).num_rows == n

        def read_values() -> None:
            assert len(r_values.run(lambda: theirs.values(start, end))) == n

        for round_ in range(repeat):
            for call in rotated([read_ours, read_arrow], round_):
                call()
        if not args.skip_btrdb_values:
            for _ in range(min(repeat, SLOW_REPEAT)):
                read_values()
        print(rate_line("btrdb Stream.values()", n, r_values) if r_values.walls else "values(): skipped")
        print(rate_line("btrdb Stream.arrow_values()", n, r_arrow))
        base = {"arrow_values()": r_arrow} | ({"values()": r_values} if r_values.walls else {})
        print(rate_line("pingthings Stream.raw_values()", n, r_ours, base))

        # ---- raw read, k streams
        print(f"\n# raw read, {k} streams")
        oset = conn.streamset_from_uuids([s.uuid for s in streams])
        bset = BtrdbStreamSet([db.stream_from_uuid(s.uuid) for s in streams]).filter(start=start, end=end)
        m_ours, m_aligned, m_values, m_arrow = Sample(), Sample(), Sample(), Sample()

        def set_ours() -> None:
            assert sum(t.num_rows for t in m_ours.run(lambda: oset.raw_values(start, end))) == n * k

        def set_aligned() -> None:
            got = m_aligned.run(lambda: oset.raw_values_aligned(start, end))
            assert got.num_rows == n and got.num_columns == k + 1

        def set_arrow() -> None:
            assert m_arrow.run(lambda: bset.arrow_values()).num_rows == n

        def set_values() -> None:
            assert sum(len(v) for v in m_values.run(lambda: bset.values())) == n * k

        for round_ in range(repeat):
            for call in rotated([set_ours, set_aligned, set_arrow], round_):
                call()  # each result is dropped before the next call starts
        if not args.skip_btrdb_values:
            for _ in range(min(repeat, SLOW_REPEAT)):
                set_values()
        if m_values.walls:
            print(rate_line("btrdb StreamSet.values()", n * k, m_values))
        print(rate_line("btrdb StreamSet.arrow_values() (joined)", n * k, m_arrow))
        print(
            rate_line(
                "pingthings StreamSet.raw_values()",
                n * k,
                m_ours,
                {"values()": m_values} if m_values.walls else {"arrow_values()": m_arrow},
            )
        )
        print(
            rate_line(
                "pingthings StreamSet.raw_values_aligned()", n * k, m_aligned, {"arrow_values()": m_arrow}
            )
        )

        # ---- insert, one stream
        print("\n# insert, 1 stream")
        i_ours, i_tuples, i_arrow = Sample(), Sample(), Sample()
        def insert_ours(i: int) -> None:
            s = conn.create(uuid.uuid4(), collection, {"name": f"ins-ours-{i}"})
            i_ours.run(lambda: s.insert((times, values)))
            assert s.count() == n

        def insert_arrow(i: int) -> None:
            b = db.create(uuid.uuid4(), collection, tags={"name": f"ins-arrow-{i}"})
            i_arrow.run(lambda: b.arrow_insert(table))

        def insert_tuples(i: int) -> None:
            b = db.create(uuid.uuid4(), collection, tags={"name": f"ins-tuples-{i}"})
            i_tuples.run(lambda: b.insert(tuples))

        inserts = min(repeat, 5)  # each run adds a million points to the server
        for round_ in range(inserts):
            for call in rotated([insert_ours, insert_arrow], round_):
                call(round_)
        for round_ in range(min(inserts, SLOW_REPEAT)):
            insert_tuples(round_)
        print(rate_line("btrdb Stream.insert() (tuples)", n, i_tuples))
        print(rate_line("btrdb Stream.arrow_insert()", n, i_arrow))
        print(
            rate_line(
                "pingthings Stream.insert() (numpy)",
                n,
                i_ours,
                {"insert()": i_tuples, "arrow_insert()": i_arrow},
            )
        )

        # ---- aligned windows latency
        windows = args.windows
        pw = max(0, int(np.floor(np.log2(max((end - start) // windows, 1)))))
        print(f"\n# aligned windows, about {windows} windows of 2^{pw} ns")
        w_ours, w_py, w_arrow = Sample(), Sample(), Sample()
        for _ in range(max(repeat, 5)):
            got = w_ours.run(lambda: ours.aligned_windows(start, end, pw))
            nw = got.num_rows
            w_arrow.run(lambda: theirs.arrow_aligned_windows(start, end, pw))
            w_py.run(lambda: theirs.aligned_windows(start, end, pw))
        print(f"({nw} windows returned)")
        print(latency_line("btrdb Stream.aligned_windows()", w_py))
        print(latency_line("btrdb Stream.arrow_aligned_windows()", w_arrow))
        print(
            latency_line(
                "pingthings Stream.aligned_windows()",
                w_ours,
                {"aligned_windows()": w_py, "arrow_aligned_windows()": w_arrow},
            )
        )

        for s in conn.streams_in_collection(collection):
            s.obliterate()
        conn.close()


if __name__ == "__main__":
    main()
