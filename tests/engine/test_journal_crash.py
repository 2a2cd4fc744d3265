"""Crash safety of buffered ingest: a SIGKILL while acknowledged points are only in the journal, and one
between the tree commit of a merge and the removal of its journal rows."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Buffering, Engine
from pingthings.server.engine.journal import journal_path, read_entries
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

from .journal_crash_child import BATCHES, batch

CHILD = Path(__file__).with_name("journal_crash_child.py")


def run_child(db: Path, sid: bytes, when: str) -> list[str]:
    """Run the child until it waits (then SIGKILL it) or kills itself; returns its output lines."""
    args = [sys.executable, str(CHILD), str(db), sid.hex(), when]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("WAITING"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, lines
    return lines


def expected() -> tuple[np.ndarray, np.ndarray]:
    parts = [batch(i) for i in range(BATCHES)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def journal_rows(db: Path) -> int:
    """Records in the journal file (a merged record stays until the file is cut back or rewritten)."""
    return len(read_entries(journal_path(db)))


@pytest.mark.parametrize("buffered", [False, True], ids=["plain-reopen", "buffered-reopen"])
def test_kill_with_points_only_in_the_journal(tmp_path: Path, buffered: bool) -> None:
    db = tmp_path / "engine.sqlite3"
    sid = uuid.uuid4().bytes
    lines = run_child(db, sid, "buffered")
    acks = [line.split() for line in lines if line.startswith("ACK")]
    assert len(acks) == BATCHES
    pending = {int(a[2]) for a in acks}
    assert pending == {FIRST_VERSION + 1}, "one open version for all the buffered inserts"
    assert journal_rows(db) == BATCHES  # acknowledged = journaled; nothing reached the tree
    with Engine(db, buffering=Buffering() if buffered else None) as engine:
        assert journal_rows(db) == 0  # replayed into the tree when the engine opened
        assert engine.latest_version(sid) == FIRST_VERSION + 1
        _, t, v = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1, version=FIRST_VERSION + 1)
        et, ev = expected()
        np.testing.assert_array_equal(t, et)
        np.testing.assert_array_equal(v, ev)
        assert engine.count(sid, version=FIRST_VERSION)[1] == 0


def test_kill_between_tree_commit_and_journal_cleanup(tmp_path: Path) -> None:
    db = tmp_path / "engine.sqlite3"
    sid = uuid.uuid4().bytes
    lines = run_child(db, sid, "after-commit")
    assert f"MERGED {FIRST_VERSION + 1}" in lines
    assert journal_rows(db) == BATCHES  # the rows outlived the commit that merged them
    with Engine(db, buffering=Buffering()) as engine:
        # The rows are recognised as merged (their version is committed) and dropped, not re-applied.
        assert journal_rows(db) == 0
        assert engine.latest_version(sid) == FIRST_VERSION + 1
        _, t, v = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)
        et, ev = expected()
        np.testing.assert_array_equal(t, et)
        np.testing.assert_array_equal(v, ev)
