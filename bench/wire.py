"""Benchmark of the point codecs (pingthings.wire.points) and Arrow helpers; prints figures, asserts nothing.

Measures, for ``--points`` points split into messages of ``--per-message`` points:

1. RawValuesResponse encode (server side) and decode on the fast path (every field present);
2. RawValuesResponse decode of google protobuf's own encoding when a share of values is 0.0, so
   proto3 omitted them (``--zero-share``): the vectorised fallback;
3. the same for AlignedWindowsResponse (StatPoint) with a share of ``stddev == 0``;
4. InsertParams encode (client side) and decode of protobuf's encoding (server side);
5. Arrow: RAW table to IPC bytes and back.

Targets (from the design measurements): fast path >= 100 M points/s for raw values, fallback >= 4 M
points/s. Wall time and process CPU time are both printed; on a shared machine trust the CPU time.
Example: ``python bench/wire.py --points 1000000 --per-message 5000``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pingthings.wire import arrow, points

PROTO = Path(__file__).resolve().parents[1] / "protos" / "btrdb" / "v5api" / "btrdb.proto"


def protobuf_module(directory: Path) -> ModuleType:
    """google protobuf classes for our .proto (renamed package), used only to produce realistic input."""
    source = PROTO.read_text().replace("package v5api;", "package pingthings_wire_bench;")
    (directory / "wire_bench.proto").write_text(source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{directory}",
            f"--python_out={directory}",
            "wire_bench.proto",
        ],
        check=True,
    )
    spec = importlib.util.spec_from_file_location("wire_bench_pb2", directory / "wire_bench_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(label: str, points_total: int, fn: Callable[[], Any], repeats: int) -> None:
    """Run ``fn`` ``repeats`` times; print the best wall and CPU time and the rates."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    print(
        f"{label:<52} wall {best_wall * 1e3:8.2f} ms ({points_total / best_wall / 1e6:7.1f} M pts/s)   "
        f"cpu {best_cpu * 1e3:8.2f} ms ({points_total / max(best_cpu, 1e-9) / 1e6:7.1f} M pts/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=5_000)
    parser.add_argument("--zero-share", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(3)
    n, per = args.points, args.per_message
    times = 1_700_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 8_333_333
    values = rng.normal(60, 5, n)
    cuts = range(0, n, per)
    print(f"{n} points in messages of {per}; zero share {args.zero_share}")

    encoded = [points.encode_raw_values(times[i : i + per], values[i : i + per], 11) for i in cuts]
    timed(
        "RawValuesResponse encode",
        n,
        lambda: [points.encode_raw_values(times[i : i + per], values[i : i + per], 11) for i in cuts],
        args.repeats,
    )
    timed(
        "RawValuesResponse decode, fast path",
        n,
        lambda: [points.decode_raw_values(m) for m in encoded],
        args.repeats,
    )
    timed(
        "RawValuesResponse decode + concatenate",
        n,
        lambda: np.concatenate([points.decode_raw_values(m).times for m in encoded]),
        args.repeats,
    )

    with tempfile.TemporaryDirectory() as tmp:
        pb = protobuf_module(Path(tmp))
        zeros = values.copy()
        zeros[rng.random(n) < args.zero_share] = 0.0
        upb_raw = []
        upb_stat = []
        upb_insert = []
        for i in cuts:
            msg = pb.RawValuesResponse(versionMajor=11)
            msg.values.extend(
                pb.RawPoint(time=int(t), value=float(v))
                for t, v in zip(times[i : i + per], zeros[i : i + per], strict=True)
            )
            upb_raw.append(msg.SerializeToString())
            stat = pb.AlignedWindowsResponse(versionMajor=11)
            stat.values.extend(
                pb.StatPoint(
                    time=int(t), min=float(v) - 1, mean=float(v), max=float(v) + 1, count=3, stddev=float(v)
                )
                for t, v in zip(times[i : i + per], zeros[i : i + per], strict=True)
            )
            upb_stat.append(stat.SerializeToString())
            insert = pb.InsertParams(uuid=b"u" * 16)
            insert.values.extend(
                pb.RawPoint(time=int(t), value=float(v))
                for t, v in zip(times[i : i + per], zeros[i : i + per], strict=True)
            )
            upb_insert.append(insert.SerializeToString())
        timed(
            "RawValuesResponse decode, protobuf-encoded (fallback)",
            n,
            lambda: [points.decode_raw_values(m) for m in upb_raw],
            args.repeats,
        )
        timed(
            "AlignedWindowsResponse decode, protobuf-encoded",
            n,
            lambda: [points.decode_windows(m) for m in upb_stat],
            args.repeats,
        )
        full_stat = [points.encode_windows(points.decode_windows(m), 11) for m in upb_stat]
        timed(
            "AlignedWindowsResponse decode, fast path",
            n,
            lambda: [points.decode_windows(m) for m in full_stat],
            args.repeats,
        )
        timed(
            "InsertParams decode, protobuf-encoded (server)",
            n,
            lambda: [points.decode_insert(m) for m in upb_insert],
            args.repeats,
        )
    timed(
        "InsertParams encode (client)",
        n,
        lambda: [points.encode_insert(b"u" * 16, times[i : i + per], values[i : i + per]) for i in cuts],
        args.repeats,
    )

    tables = [arrow.raw_table(times[i : i + per], values[i : i + per]) for i in cuts]
    blobs = [arrow.table_to_ipc(t) for t in tables]
    timed("Arrow raw table -> IPC", n, lambda: [arrow.table_to_ipc(t) for t in tables], args.repeats)
    timed(
        "Arrow IPC -> table -> numpy",
        n,
        lambda: [arrow.table_to_points(arrow.ipc_to_table(b)) for b in blobs],
        args.repeats,
    )


if __name__ == "__main__":
    main()
