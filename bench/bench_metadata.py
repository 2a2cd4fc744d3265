"""Metadata store figures: per-call cost of the stream operations the v5 handlers use.

Usage: ``python bench/bench_metadata.py [--streams N]``. Prints wall-clock rate and CPU time per
call (``time.process_time``), since wall time is noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pingthings.server.metadata import MetadataStore


def measure(label: str, calls: int, work: Callable[[], object]) -> None:
    """Run ``work`` once (it makes ``calls`` calls) and print the rate and CPU cost per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<44} {calls / wall:>12,.0f} calls/s wall   {cpu / calls * 1e6:>10.1f} µs CPU/call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=5000)
    streams = parser.parse_args().streams
    with tempfile.TemporaryDirectory() as tmp, MetadataStore(Path(tmp) / "meta.sqlite") as meta:
        uids = [uuid.uuid4().bytes for _ in range(streams)]
        measure(
            "create_stream",
            streams,
            lambda: [
                meta.create_stream(u, f"site/{i % 50}", {"name": f"s{i}", "unit": "V"}, {"k": str(i % 7)})
                for i, u in enumerate(uids)
            ],
        )
        measure("get_stream", streams, lambda: [meta.get_stream(u) for u in uids])
        measure("record_write", streams, lambda: [meta.record_write(u, time.time_ns(), 100) for u in uids])
        measure("set_annotations", streams, lambda: [meta.set_annotations(u, 0, {"x": "y"}) for u in uids])
        measure(
            "lookup_streams, exact collection + name",
            200,
            lambda: [meta.lookup_streams("site/1", False, {"name": "s1"}) for _ in range(200)],
        )
        measure(
            "lookup_streams, prefix + tag + annotation",
            20,
            lambda: [meta.lookup_streams("site/1", True, {"unit": "V"}, {"k": "3"}) for _ in range(20)],
        )
        measure(f"lookup_streams, all {streams}", 5, lambda: [meta.lookup_streams() for _ in range(5)])
        measure("list_collections", 20, lambda: [meta.list_collections() for _ in range(20)])
        measure(
            "sql_query distinct names by collection",
            20,
            lambda: [
                meta.sql_query(
                    "select distinct(name) as name from streams where collection like $1", ["site/1%"]
                )
                for _ in range(20)
            ],
        )


if __name__ == "__main__":
    main()
