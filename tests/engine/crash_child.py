"""Ingest process for the crash test: inserts numbered batches and reports each acknowledgement.

Usage: ``python crash_child.py DB_PATH STREAM_HEX FIRST_BATCH [buffered]``. Prints ``ACK <batch> <version>``
after each insert returns, then keeps going until it is killed. With ``buffered`` the engine buffers inserts
(a batch is journaled, and merged when the next one would overflow the buffer).
"""

from __future__ import annotations

import sys

import numpy as np

from pingthings.server.engine import Buffering, Engine, MergePolicy

BATCH = 20_000
GAP = 4_166_667  # 240 Hz: split buckets hold leaves of ~16 points, stored in leaf groups
SPAN = BATCH * GAP  # each batch owns [i * SPAN, (i + 1) * SPAN); batch edges cut groups


def batch(i: int) -> tuple[np.ndarray, np.ndarray]:
    """The deterministic content of batch ``i``."""
    rng = np.random.default_rng(i)
    gap = GAP
    t = i * SPAN + np.arange(BATCH, dtype=np.int64) * gap + rng.integers(0, gap // 2, BATCH)
    return t, rng.normal(i, 1.0, BATCH)


def main() -> None:
    path, stream_hex, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sid = bytes.fromhex(stream_hex)
    buffered = sys.argv[4:] == ["buffered"]
    engine = Engine(path, buffering=Buffering() if buffered else None)
    if not engine.exists(sid):
        engine.create_stream(sid)
    print(f"START {engine.latest_version(sid)}", flush=True)
    i = first
    while True:
        t, v = batch(i)
        version = engine.insert(sid, t, v, merge=MergePolicy.REPLACE)
        print(f"ACK {i} {version}", flush=True)
        i += 1


if __name__ == "__main__":
    main()
