"""Throughput of the embedded server as seen by the official BTrDB client (btrdb 5.34, grpcio).

Starts an embedded server in a background thread (or uses ``--endpoint``), then with the
official client on the same machine measures:

* insert: ``Stream.insert`` (lists of tuples, 50 000-point batches) and ``Stream.arrow_insert``;
* read:   ``Stream.values`` (RawValues, protobuf) and ``Stream.arrow_values`` (ArrowRawValues);
* then the server alone, without the official client's per-point Python work: pre-encoded Insert
  messages and RawValues replies read as raw bytes over grpcio (decoded with the numpy codec).

``--raw-calls N`` measures instead the server's own CPU per unary call, with no client library at
all: a server in its own process, and one raw HTTP/2 connection (built on ``pingthings.wire.http2``,
pre-encoded requests, replies not decoded) making N Info calls one at a time and then pipelined 32
at a time. The server's user + system CPU comes from ``/proc`` (10 ms ticks). ``--compare-src DIR``
alternates with a server run from another ``src/`` (e.g. main's, exported) in the same session.

Prints points per second with wall and process CPU time (the client shares the machine and,
with the embedded server, the process). Validate at small size with ``--points 20000``.

Usage::

    python bench/server.py [--points 1000000] [--repeat 3] [--endpoint HOST:PORT]
    python bench/server.py --raw-calls 5000 [--repeat 3] [--compare-src /tmp/main/src]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
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


@contextlib.contextmanager
def server_endpoint(endpoint: str | None) -> Iterator[str]:
    """Yield an endpoint: the given one, or a fresh embedded server's."""
    if endpoint:
        yield endpoint
        return
    from pingthings.server import Server

    with tempfile.TemporaryDirectory(prefix="pt-bench-") as data, Server(data) as srv:
        yield srv.endpoint


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``fn``; return (wall seconds, process CPU seconds, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def report(label: str, points: int, samples: list[tuple[float, float]]) -> None:
    """Print the best and median rates of a measurement."""
    walls = sorted(s[0] for s in samples)
    best, median = walls[0], walls[len(walls) // 2]
    cpu = min(s[1] for s in samples)
    print(
        f"{label:<34} {points / best / 1e6:8.2f} M pts/s best  {points / median / 1e6:8.2f} M pts/s median  "
        f"(wall {best:.3f} s, process cpu {cpu:.3f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000, help="points per stream (default 1 000 000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each measurement (default 3)")
    parser.add_argument("--endpoint", help="use a running server instead of starting one")
    parser.add_argument("--api-key", help="API key for --endpoint")
    parser.add_argument("--raw-calls", type=int, default=0, help="measure server CPU per raw Info call")
    parser.add_argument("--compare-src", help="with --raw-calls: also run a server from this src/ dir")
    args = parser.parse_args()
    if args.raw_calls:
        raw_call_figures(args.raw_calls, args.repeat, args.compare_src)
        return

    import btrdb

    n = args.points
    rng = np.random.default_rng(0)
    times = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 8_333_333
    values = rng.normal(size=n)
    tuples = list(zip(times.tolist(), values.tolist(), strict=True))
    table = pa.table({"time": pa.array(times).cast(pa.timestamp("ns", tz="UTC")), "value": values})
    end = int(times[-1]) + 1

    with server_endpoint(args.endpoint) as endpoint:
        db = btrdb.connect(endpoint, apikey=args.api_key)
        print(f"server {endpoint}; {n} points per stream; btrdb {btrdb.__version__}")
        collection = f"bench/{uuid.uuid4().hex[:8]}"
        insert_samples, arrow_insert_samples, streams = [], [], []
        for i in range(args.repeat):
            s = db.create(uuid.uuid4(), collection, tags={"name": f"insert{i}"})
            wall, cpu, _ = timed(lambda s=s: s.insert(tuples))
            insert_samples.append((wall, cpu))
            a = db.create(uuid.uuid4(), collection, tags={"name": f"arrow{i}"})
            wall, cpu, _ = timed(lambda a=a: a.arrow_insert(table))
            arrow_insert_samples.append((wall, cpu))
            streams.append(s)
        report("insert (tuples, 50k batches)", n, insert_samples)
        report("arrow_insert", n, arrow_insert_samples)

        target = streams[0]
        values_samples, arrow_samples = [], []
        for _ in range(args.repeat):
            wall, cpu, got = timed(lambda: target.values(int(times[0]), end))
            assert len(got) == n, len(got)
            values_samples.append((wall, cpu))
            wall, cpu, got = timed(lambda: target.arrow_values(int(times[0]), end))
            assert got.num_rows == n and np.array_equal(got.column("value").to_numpy(), values)
            arrow_samples.append((wall, cpu))
        report("values (RawValues)", n, values_samples)
        report("arrow_values (ArrowRawValues)", n, arrow_samples)
        raw_figures(endpoint, args.api_key, target.uuid.bytes, times, values, end, args.repeat)
        for s in db.streams_in_collection(collection):
            s.obliterate()


def raw_figures(
    endpoint: str,
    api_key: str | None,
    existing: bytes,
    times: np.ndarray,
    values: np.ndarray,
    end: int,
    repeat: int,
) -> None:
    """Server throughput with pre-encoded requests and undecoded replies (grpcio, bytes in and out)."""
    import grpc

    from pingthings._proto import v5api
    from pingthings.wire import arrow as wire_arrow
    from pingthings.wire import points

    n = len(times)
    metadata = [("authorization", f"Bearer {api_key}")] if api_key else None
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(endpoint, options=options) as channel:
        create = channel.unary_unary("/v5api.BTrDB/Create")
        insert = channel.unary_unary("/v5api.BTrDB/Insert")
        raw_values = channel.unary_stream("/v5api.BTrDB/RawValues")
        insert_samples = []
        for i in range(repeat):
            uu = uuid.uuid4().bytes
            create(
                bytes(
                    v5api.CreateParams(
                        uuid=uu,
                        collection=f"bench/raw/{i}",
                        tags=[v5api.KeyOptValue(key="name", val=v5api.OptValue(value=uu.hex()))],
                    )
                ),
                metadata=metadata,
            )
            batches = [
                points.encode_insert(uu, times[k : k + 50_000], values[k : k + 50_000])
                for k in range(0, n, 50_000)
            ]
            wall, cpu, _ = timed(lambda b=batches: [insert(m, metadata=metadata) for m in b])
            insert_samples.append((wall, cpu))
        report("server: Insert (pre-encoded, 50k)", n, insert_samples)
        request = bytes(v5api.RawValuesParams(uuid=existing, start=int(times[0]), end=end))
        fetch_samples, decode_samples = [], []
        for _ in range(repeat):
            wall, cpu, replies = timed(lambda: list(raw_values(request, metadata=metadata)))
            fetch_samples.append((wall, cpu))
            wall, cpu, decoded = timed(lambda r=replies: [points.decode_raw_values(m) for m in r])
            assert sum(len(d.times) for d in decoded) == n
            decode_samples.append((wall, cpu))
        report("server: RawValues (bytes only)", n, fetch_samples)
        report("  + numpy decode of those replies", n, decode_samples)
        arrow_values = channel.unary_stream("/v5api.BTrDB/ArrowRawValues")
        request = bytes(v5api.ArrowRawValuesParams(uuid=existing, start=int(times[0]), end=end))
        arrow_samples = []
        for _ in range(repeat):
            wall, cpu, replies = timed(lambda: list(arrow_values(request, metadata=metadata)))
            arrow_samples.append((wall, cpu))
        tables = [wire_arrow.ipc_to_table(v5api.ArrowRawValuesResponse.parse(m).arrow_bytes) for m in replies]
        rows = sum(t.num_rows for t in tables)
        assert rows == n, rows
        report("server: ArrowRawValues (bytes only)", n, arrow_samples)


@contextlib.contextmanager
def server_in_process(src: str | None) -> Iterator[tuple[int, int]]:
    """A ``python -m pingthings.server`` process (from ``src`` if given); yield (pid, port)."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory(prefix="pt-bench-") as data:
        command = [sys.executable, "-m", "pingthings.server", "--data", data, "--listen", "127.0.0.1:0"]
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            if "listening on" not in line:
                raise RuntimeError(f"the server did not start: {line!r}")
            yield proc.pid, int(line.strip().rsplit(":", 1)[1])
        finally:
            proc.terminate()
            proc.wait(30)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RawInfoCaller:
    """One HTTP/2 connection making Info calls from pre-encoded frames (no gRPC client library)."""

    def __init__(self, port: int) -> None:
        from pingthings.wire.http2 import frames
        from pingthings.wire.http2.hpack import HeaderEncoder

        self.frames = frames
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.block = HeaderEncoder().encode(
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/v5api.BTrDB/Info"),
                (b":authority", b"bench"),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ]
        )
        self.reader = frames.FrameReader(max_frame_size=frames.LARGEST_MAX_FRAME)
        self.next_id = 1
        self.sock.sendall(
            frames.PREFACE
            + frames.settings_frame({frames.INITIAL_WINDOW_SIZE: 1 << 24})
            + frames.window_update(0, (1 << 31) - 1 - frames.DEFAULT_WINDOW)
        )

    def _request(self) -> bytes:
        f, sid = self.frames, self.next_id
        self.next_id += 2
        head = f.frame_header(len(self.block), f.HEADERS, f.END_HEADERS, sid) + self.block
        return head + f.data_header(sid, 5, True) + b"\x00\x00\x00\x00\x00"

    def calls(self, count: int, inflight: int) -> None:
        """Make ``count`` calls with up to ``inflight`` open at once."""
        f = self.frames
        sent = done = 0
        while done < count:
            batch = []
            while sent < count and sent - done < inflight:
                batch.append(self._request())
                sent += 1
            if batch:
                self.sock.sendall(b"".join(batch))
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("the server closed the connection")
            self.reader.feed(data)
            for frame in self.reader:
                if frame.type == f.HEADERS and frame.flags & f.END_STREAM:
                    done += 1
                elif frame.type == f.SETTINGS and not frame.flags & f.ACK:
                    self.sock.sendall(f.settings_ack())
                elif frame.type == f.PING and not frame.flags & f.ACK:
                    self.sock.sendall(f.ping(bytes(frame.payload), ack=True))
                elif frame.type == f.GOAWAY:
                    raise RuntimeError(f"GOAWAY from the server: {f.parse_goaway(frame.payload)}")

    def close(self) -> None:
        self.sock.close()


def raw_call_figures(calls: int, repeats: int, compare_src: str | None) -> None:
    """Print the server's CPU µs per Info call, sequential and pipelined (see the module docstring)."""
    servers = [("this src", None)] + ([(compare_src, compare_src)] if compare_src else [])
    results: dict[str, dict[int, list[float]]] = {label: {1: [], 32: []} for label, _ in servers}
    for _ in range(repeats):
        for label, src in servers:
            with server_in_process(src) as (pid, port):
                caller = RawInfoCaller(port)
                caller.calls(200, 1)  # warm up: imports, first call
                for inflight in (1, 32):
                    before = process_cpu(pid)
                    caller.calls(calls, inflight)
                    results[label][inflight].append((process_cpu(pid) - before) / calls * 1e6)
                caller.close()
    load = os.getloadavg()[0]
    print(f"server CPU per raw Info call, {calls} calls x {repeats} rounds (load average {load:.1f})")
    for label, by_inflight in results.items():
        for inflight, values in by_inflight.items():
            values.sort()
            print(
                f"{label:<30} {inflight:>2} in flight  best {values[0]:7.1f} µs  "
                f"median {values[len(values) // 2]:7.1f} µs"
            )


if __name__ == "__main__":
    main()
