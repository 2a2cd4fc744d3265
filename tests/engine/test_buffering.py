"""Buffered ingest in the engine: pending versions, read-your-writes, merge triggers, bounds, disk full."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Buffering, Engine, MergePolicy
from pingthings.server.engine.journal import journal_path
from pingthings.server.errors import BadValue, DiskFull
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

T0 = 1_700_000_000 * 10**9
ALL = (MIN_TIME, TIME_LIMIT - 1)


def second(i: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One second of a 120 Hz stream."""
    t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
    return t, np.round(100 * np.sin(t / 1e9 + stream), 3)


def journal_rows(path: Path) -> int:
    with sqlite3.connect(journal_path(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])


def wait_until(condition: object, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until it holds (the background merger works on its own schedule)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "engine.sqlite3"


def test_inserts_share_a_pending_version_and_every_read_sees_them(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        eng.create_stream(sid)
        versions = [eng.insert(sid, *second(i)) for i in range(5)]
        assert versions == [FIRST_VERSION + 1] * 5
        assert eng.peek_version(sid) == FIRST_VERSION + 1
        assert journal_rows(path) == 5 and eng.buffered_points() == 600
        # The in-memory read path declines while points are buffered; the full path merges them.
        assert eng.iter_raw_pieces_in_memory(sid, *ALL) is None
        version, chunks = eng.iter_raw_pieces(sid, *ALL)
        assert version == FIRST_VERSION + 1
        assert sum(rows for _, _, rows in chunks) == 600
        assert journal_rows(path) == 0 and eng.buffered_points() == 0
        assert eng.iter_raw_pieces_in_memory(sid, *ALL) is not None
        # Sealed: the next insert opens the next version, and the old one stays a snapshot.
        assert eng.insert(sid, *second(5)) == FIRST_VERSION + 2
        assert eng.count(sid, version=FIRST_VERSION + 1)[1] == 600
        assert eng.count(sid)[1] == 720
        _, windows = eng.aligned_windows(sid, *ALL, 40)
        assert int(windows.count.sum()) == 720


def test_latest_version_seals_and_explicit_old_reads_do_not(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        eng.create_stream(sid)
        v1 = eng.insert(sid, *second(0))
        assert eng.latest_version(sid) == v1  # merged: v1 is now a snapshot
        v2 = eng.insert(sid, *second(1))
        assert v2 == v1 + 1
        assert eng.count(sid, version=v1)[1] == 120  # an older version: the buffer stays
        assert eng.buffered_points() == 120
        assert eng.flush(sid) == v2 and eng.buffered_points() == 0


def test_buffers_merge_by_size_policy_and_age(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_points=300, max_age=0.2)) as eng:
        eng.create_stream(sid)
        assert eng.insert(sid, *second(0)) == FIRST_VERSION + 1
        assert eng.insert(sid, *second(1)) == FIRST_VERSION + 1
        # 240 + 120 > 300: the buffer is merged first, this insert opens the next version.
        assert eng.insert(sid, *second(2)) == FIRST_VERSION + 2
        assert eng.peek_version(sid) == FIRST_VERSION + 2
        # Another merge policy merges too.
        assert eng.insert(sid, *second(3), merge=MergePolicy.REPLACE) == FIRST_VERSION + 3
        # Age: the background thread merges a buffer once its first insert is 0.2 s old.
        wait_until(lambda: eng.buffered_points() == 0)
        assert journal_rows(path) == 0
        assert eng.count(sid, version=FIRST_VERSION + 3)[1] == 480


def test_all_buffers_together_stay_within_max_bytes(path: Path) -> None:
    sids = [uuid.uuid4().bytes for _ in range(4)]
    budget = 16 * 120 * 3  # three inserts' worth
    with Engine(path, buffering=Buffering(max_age=3600.0, max_bytes=budget)) as eng:
        for s in sids:
            eng.create_stream(s)
        for i in range(5):
            for k, s in enumerate(sids):
                eng.insert(s, *second(i, k))
                assert eng.buffered_points() * 16 <= budget
        assert all(eng.count(s)[1] == 600 for s in sids)


def test_insert_nowait(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path) as plain:
        plain.create_stream(sid)
        assert plain.insert_nowait(sid, *second(0)) is None  # buffering off: never at once
    with Engine(path, buffering=Buffering(max_points=300, max_age=3600.0)) as eng:
        assert eng.insert_nowait(sid, *second(0)) is None  # not loaded yet
        assert eng.count(sid)[1] == 0
        assert eng.insert_nowait(sid, *second(0)) == FIRST_VERSION + 1
        assert eng.insert_nowait(sid, *second(1)) == FIRST_VERSION + 1
        assert eng.insert_nowait(sid, *second(2)) is None  # would need a merge first
        assert eng.buffered_points() == 240 and journal_rows(path) == 2
        assert eng.insert(sid, *second(2)) == FIRST_VERSION + 2
        with pytest.raises(BadValue):
            eng.insert_nowait(sid, np.array([T0]), np.array([np.nan]))
        assert eng.count(sid)[1] == 360


def test_disk_full_journal_refuses_the_insert(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        eng.create_stream(sid)
        eng.insert(sid, *second(0))
        # The journal may not grow: SQLite then fails with SQLITE_FULL, as on a full disk.
        conn = eng._journal._conn
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(DiskFull, match="disk is full"):
            for i in range(1, 200):
                eng.insert(sid, *second(i))
        acknowledged = eng.buffered_points()
        conn.execute("PRAGMA max_page_count=1000000")
    with Engine(path) as eng:  # every acknowledged point is there, the refused one is not
        assert eng.count(sid)[1] == acknowledged
