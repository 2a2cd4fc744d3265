"""Threads: readers of pinned versions during writes, and writers of different streams at once."""

from __future__ import annotations

import threading
import uuid

import numpy as np

from pingthings.server.engine import Engine
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

BATCH = 3000


def batch(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``i``: 3000 points in its own time slice, values equal to ``i``."""
    t = i * 10**10 + np.arange(BATCH, dtype=np.int64) * 1_000_003
    return t, np.full(BATCH, float(i))


def test_readers_see_whole_versions_while_writers_run(engine: Engine) -> None:
    streams = [uuid.uuid4().bytes for _ in range(3)]
    for sid in streams:
        engine.create_stream(sid)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(sid: bytes) -> None:
        try:
            for i in range(12):
                engine.insert(sid, *batch(i))
                if i % 4 == 3:
                    engine.delete(sid, i * 10**10, i * 10**10 + 10**9)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def reader(sid: bytes) -> None:
        try:
            while not done.is_set():
                ver, t, v = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)
                # A version is whole: every batch present is complete, minus only the deleted slices.
                _, n = engine.count(sid, version=ver)
                assert n == t.size
                for i in np.unique(v).astype(int).tolist():
                    got = t[v == i]
                    full = batch(i)[0]
                    trimmed = full[full >= i * 10**10 + 10**9]
                    whole = np.array_equal(got, full)
                    assert whole or (i % 4 == 3 and np.array_equal(got, trimmed)), (i, ver)
                _, w = engine.aligned_windows(sid, MIN_TIME, TIME_LIMIT - 1, 40, version=ver)
                assert int(w.count.sum()) == t.size
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(sid,)) for sid in streams]
    readers = [threading.Thread(target=reader, args=(sid,)) for sid in streams[:2]]
    for th in writers + readers:
        th.start()
    for th in writers:
        th.join()
    done.set()
    for th in readers:
        th.join()
    assert not errors, errors[0]
    for sid in streams:
        # 12 inserts and 3 deletes from version 10.
        assert engine.latest_version(sid) == 25
        _, t, v = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)
        for i in range(12):
            expected = batch(i)[0]
            if i % 4 == 3:
                expected = expected[expected >= i * 10**10 + 10**9]
            np.testing.assert_array_equal(t[v == i], expected)


def test_concurrent_writers_to_one_stream_serialise(engine: Engine, stream: bytes) -> None:
    versions: list[int] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        for i in range(k * 5, k * 5 + 5):
            ver = engine.insert(stream, *batch(i))
            with lock:
                versions.append(ver)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(versions) == list(range(11, 31)), "every insert got its own version"
    assert engine.count(stream)[1] == 20 * BATCH


def test_obliterate_racing_writers_and_readers_leaves_nothing_behind(engine: Engine) -> None:
    import sqlite3

    from pingthings.server.errors import StreamNotFound

    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    engine.insert(sid, *batch(0))
    outcomes: list[str] = []
    unexpected: list[BaseException] = []
    go = threading.Barrier(4)

    def hammer(read: bool) -> None:
        go.wait()
        for i in range(1, 40):
            try:
                if read:
                    engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)
                else:
                    engine.insert(sid, *batch(i))
                outcomes.append("ok")
            except StreamNotFound:
                outcomes.append("gone")
            except BaseException as exc:
                unexpected.append(exc)

    def obliterate() -> None:
        go.wait()
        engine.obliterate(sid)

    threads = [threading.Thread(target=hammer, args=(r,)) for r in (False, False, True)]
    threads.append(threading.Thread(target=obliterate))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not unexpected, unexpected[0]
    assert "gone" in outcomes
    assert not engine.exists(sid)
    with sqlite3.connect(engine.path) as conn:
        assert conn.execute("SELECT count(*) FROM superblocks").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM blocks").fetchone()[0] == 0
    conn.close()
