"""Dropping old versions: kept versions read the same, dropped ones say so, their blocks are freed."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Engine
from pingthings.server.errors import VersionNotAvailable
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

from .conftest import FakeClock

T0 = 1_700_000_000 * 10**9


def second(i: int) -> tuple[np.ndarray, np.ndarray]:
    """One second of a 120 Hz stream."""
    t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
    return t, np.round(np.sin(t / 1e9) * 100, 3)


def block_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM blocks").fetchone()[0])


def test_compact_drops_old_versions_and_frees_their_blocks(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    clock = FakeClock()
    sid, other = uuid.uuid4().bytes, uuid.uuid4().bytes
    with Engine(path, clock=clock) as eng:
        eng.create_stream(sid)
        eng.create_stream(other)
        versions = [eng.insert(sid, *second(i)) for i in range(40)]
        eng.insert(other, *second(0))
        cutoff = clock.last  # versions[-1] was committed before this reading of the clock
        for i in range(40, 50):
            versions.append(eng.insert(sid, *second(i)))
        cut_version = eng.version_at_time(sid, cutoff)
        assert cut_version == versions[39]
        kept = {v: eng.raw_values(sid, MIN_TIME, TIME_LIMIT - 1, version=v)[1:] for v in versions[39:]}
        other_before = eng.raw_values(other, MIN_TIME, TIME_LIMIT - 1)
        blocks_before = block_count(path)

        results = {r.uuid: r for r in eng.compact(cutoff)}
        assert results[sid].kept_from == cut_version
        assert results[sid].versions_dropped == cut_version - FIRST_VERSION
        assert results[sid].blocks_freed > 0 and results[sid].bytes_freed > 0
        assert block_count(path) == blocks_before - results[sid].blocks_freed - results[other].blocks_freed

        for v, (t, vals) in kept.items():  # every kept version reads exactly as before
            _, t2, v2 = eng.raw_values(sid, MIN_TIME, TIME_LIMIT - 1, version=v)
            np.testing.assert_array_equal(t2, t)
            np.testing.assert_array_equal(v2, vals)
            assert eng.count(sid, version=v)[1] == t.size
        for v in (FIRST_VERSION, versions[0], versions[38]):
            with pytest.raises(VersionNotAvailable, match=rf"version {v} was dropped by compaction"):
                eng.raw_values(sid, MIN_TIME, TIME_LIMIT - 1, version=v)
        with pytest.raises(VersionNotAvailable, match="dropped by compaction"):
            eng.version_at_time(sid, T0)
        np.testing.assert_array_equal(eng.raw_values(other, MIN_TIME, TIME_LIMIT - 1)[1], other_before[1])
        assert eng.insert(sid, *second(60)) == versions[-1] + 1  # writing goes on
        eng.vacuum()
    with Engine(path) as eng:  # and all of it holds after reopening
        _, t, _ = eng.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)
        assert t.size == 51 * 120
        with pytest.raises(VersionNotAvailable, match="dropped by compaction"):
            eng.count(sid, version=versions[10])


def test_compact_keeps_a_stream_newer_than_the_cutoff(engine: Engine, stream: bytes) -> None:
    engine.insert(stream, *second(0))
    results = engine.compact(0)  # 1970: before the stream existed
    assert [r.versions_dropped for r in results] == [0]
    assert engine.count(stream, version=FIRST_VERSION)[1] == 0
