"""The engine's WAL stays bounded while one writer commits small versions and a reader keeps reading."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Engine
from pingthings.server.engine.store import PAGE_SIZE
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

T0 = 1_700_000_000 * 10**9
WAL_LIMIT = 64 << 20


@pytest.mark.slow
def test_wal_stays_under_64_mib_during_continuous_commits(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    sid = uuid.uuid4().bytes
    done = threading.Event()
    reads = 0

    with Engine(path) as eng:  # unbuffered: every insert is a commit of a few pages
        eng.create_stream(sid)

        def read_forever() -> None:
            nonlocal reads
            while not done.is_set():
                eng.count(sid, MIN_TIME, TIME_LIMIT - 1, version=0)
                reads += 1

        reader = threading.Thread(target=read_forever)
        reader.start()
        peak = 0
        commits = 1600  # at 4 or more pages a commit: over 100 MiB of WAL frames in all
        try:
            for i in range(commits):
                t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
                eng.insert(sid, t, np.round(np.sin(t / 1e9), 3))
                peak = max(peak, os.path.getsize(f"{path}-wal"))
        finally:
            done.set()
            reader.join()
    assert commits * 4 * PAGE_SIZE > 1.5 * WAL_LIMIT  # the test writes more than the bound
    assert reads > 0
    assert peak <= WAL_LIMIT, f"WAL peaked at {peak / 2**20:.1f} MiB"


@pytest.mark.slow
def test_journal_stays_under_64_mib_while_nothing_is_merged(tmp_path: Path) -> None:
    from pingthings.server.engine import Buffering

    path = tmp_path / "engine.sqlite3"
    sids = [uuid.uuid4().bytes for _ in range(100)]
    inserts = 12_000  # ~8 KiB of journal WAL each (a row and its index entry): ~95 MiB in all
    peak = 0
    with Engine(path, buffering=Buffering(max_age=3600.0, max_bytes=64 << 20)) as eng:
        for s in sids:
            eng.create_stream(s)
        for i in range(inserts):
            t = T0 + (i // 100) * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
            eng.insert(sids[i % 100], t, np.round(np.sin(t / 1e9), 3))
            peak = max(peak, eng.journal_bytes())
        assert eng.buffered_points() == inserts * 120  # no merge happened: only checkpoints bound it
    assert peak <= WAL_LIMIT, f"journal peaked at {peak / 2**20:.1f} MiB"
