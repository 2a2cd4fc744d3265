"""Crash safety: SIGKILL an ingesting process at random moments, reopen, check every acknowledged batch.

The child prints ``ACK <batch> <version>`` after each insert returns; the parent reads those lines (no
sleeping) and kills the child after a random number of them, so the kill lands at a random point of the
next insert or commit. Re-running from the batch after the last acknowledged one uses REPLACE, so a batch
that was committed but not acknowledged is rewritten without duplicates.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Engine
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

from .crash_child import BATCH, batch

CHILD = Path(__file__).with_name("crash_child.py")


def run_until_killed(
    db: Path, sid: bytes, first: int, acks_before_kill: int, buffered: bool = False
) -> list[tuple[int, int]]:
    """Start the child, read ``acks_before_kill`` acknowledgements, SIGKILL it; returns (batch, version)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), sid.hex(), str(first), *(["buffered"] if buffered else [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[tuple[int, int]] = []
    try:
        assert proc.stdout is not None
        start = proc.stdout.readline()
        assert start.startswith("START"), start
        while len(acked) < acks_before_kill:
            line = proc.stdout.readline()
            assert line.startswith("ACK"), f"child stopped early: {line!r}"
            _, i, version = line.split()
            acked.append((int(i), int(version)))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.slow
@pytest.mark.parametrize("buffered", [False, True], ids=["commit-each", "buffered"])
def test_sigkill_loses_no_acknowledged_batch(tmp_path: Path, buffered: bool) -> None:
    db = tmp_path / "engine.sqlite3"
    sid = uuid.uuid4().bytes
    rng = random.Random(20261127)
    acked: list[tuple[int, int]] = []
    next_batch = 0
    for _ in range(5):
        got = run_until_killed(db, sid, next_batch, rng.randint(1, 6), buffered)
        acked.extend(got)
        next_batch = got[-1][0] + 1

    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Engine(db) as engine:
        latest = engine.latest_version(sid)
        assert latest >= max(v for _, v in acked)
        # Every acknowledged version holds exactly the batches up to the acknowledged one.
        for i, version in acked:
            _, t, v = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1, version=version)
            assert t.size == (i + 1) * BATCH, (i, version)
            et, ev = batch(i)
            np.testing.assert_array_equal(t[-BATCH:], et)
            np.testing.assert_array_equal(v[-BATCH:], ev)
        # Every version that exists is complete and readable (no half-written version).
        for version in range(FIRST_VERSION, latest + 1):
            _, n = engine.count(sid, version=version)
            _, t, _ = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1, version=version)
            assert n == t.size and n % BATCH == 0
        assert engine.count(sid)[1] >= (acked[-1][0] + 1) * BATCH
