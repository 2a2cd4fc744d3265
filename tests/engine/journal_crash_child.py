"""Ingest process for the journal crash tests: buffered inserts, then a SIGKILL at a chosen moment.

Usage: ``python journal_crash_child.py DB_PATH STREAM_HEX WHEN`` with WHEN one of

* ``buffered``: insert batches (each acknowledged as ``ACK <batch> <version>``) that stay in the
  journal (no merge is due), then wait to be killed;
* ``after-commit``: the same, then flush, and kill itself right after the tree version is
  committed and before the journal rows are removed (prints ``MERGED <version>`` first).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import numpy as np

from pingthings.server.engine import Buffering, Engine
from pingthings.server.engine.journal import Journal

BATCH = 120
BATCHES = 25


def batch(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``i``: one second of a 120 Hz stream with millivolt values."""
    t = (1_700_000_000 + i) * 10**9 + np.arange(BATCH, dtype=np.int64) * 8_333_333
    return t, np.round(np.linspace(i, i + 1, BATCH, endpoint=False), 3)


def main() -> None:
    path, stream_hex, when = sys.argv[1], sys.argv[2], sys.argv[3]
    sid = bytes.fromhex(stream_hex)
    engine = Engine(path, buffering=Buffering(max_points=1 << 20, max_age=3600.0))
    engine.create_stream(sid)
    for i in range(BATCHES):
        version = engine.insert(sid, *batch(i))
        print(f"ACK {i} {version}", flush=True)
    if when == "after-commit":

        def die(self: Journal, sid: int, up_to_version: int) -> None:
            print(f"MERGED {up_to_version}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        Journal.remove = die  # type: ignore[method-assign]
        engine.flush(sid)
    print("WAITING", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
