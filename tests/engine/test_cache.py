"""The decoded-block cache: reads through a warm (or constantly evicting) cache give the model's answer.

Every test reads data once to fill the cache, changes the stream (delete, new versions, obliterate and
re-create), and checks the next reads against the brute-force model, at the latest and at older versions.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Engine, MergePolicy
from pingthings.server.engine.blocks import PointBlock
from pingthings.server.errors import InvalidTimeRange, StreamNotFound

from .model import Model

#: Budgets: the default, a few blocks (evicts on nearly every read) and no cache.
BUDGETS = [None, 40_000, 0]


def open_engine(path: Path, budget: int | None) -> Engine:
    return Engine(path) if budget is None else Engine(path, cache_bytes=budget)


def dense(n: int, start: int, step: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` regularly spaced points with random values."""
    rng = np.random.default_rng(seed)
    return start + np.arange(n, dtype=np.int64) * step, np.round(rng.normal(50.0, 5.0, n), 3)


def check(engine: Engine, model: Model, sid: bytes, lo: int, hi: int, version: int = 0) -> None:
    """Raw values (whole and chunked) and count equal the model's."""
    _, t, v = engine.raw_values(sid, lo, hi, version=version)
    et, ev = model.raw(lo, hi, version=version)
    np.testing.assert_array_equal(t, et)
    np.testing.assert_array_equal(v.view(np.int64), ev.view(np.int64))
    parts = list(engine.iter_raw_values(sid, lo, hi, version=version, chunk=1500)[1])
    assert all(p[0].size == 1500 for p in parts[:-1]) and all(0 < p[0].size <= 1500 for p in parts)
    joined = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
    np.testing.assert_array_equal(joined.view(np.int64), ev.view(np.int64))
    assert engine.count(sid, lo, hi, version=version)[1] == et.size


def insert(
    engine: Engine, model: Model, sid: bytes, t: np.ndarray, v: np.ndarray, policy: MergePolicy
) -> int:
    got = engine.insert(sid, t, v, policy)
    assert got == model.insert(t.tolist(), v.tolist(), policy, None)
    return got


# Spacings: 1 us gives full leaves of 1024 points; 64 us gives leaves of ~16 points stored in groups.
@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("step", [1000, 64_000])
def test_reads_after_deletes_and_new_versions(tmp_path: Path, budget: int | None, step: int) -> None:
    engine = open_engine(tmp_path / "e.sqlite3", budget)
    model = Model()
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    t, v = dense(20_000, 1 << 40, step, 1)
    insert(engine, model, sid, t, v, MergePolicy.NEVER)
    lo, hi = int(t[0]), int(t[-1]) + 1
    first = engine.latest_version(sid)
    check(engine, model, sid, lo, hi)  # cold, fills the cache
    check(engine, model, sid, lo, hi)  # warm
    mid = int(t[7000])
    assert engine.delete(sid, mid, int(t[9000])) == model.delete(mid, int(t[9000]))
    check(engine, model, sid, lo, hi)
    check(engine, model, sid, lo + 3 * step + 1, mid + 5 * step)  # partial first and last blocks
    # Overwrite half the points with new values (same times, merge REPLACE) and add duplicates.
    t2, v2 = dense(10_000, int(t[5000]), step, 2)
    insert(engine, model, sid, t2, v2, MergePolicy.REPLACE)
    insert(engine, model, sid, t2[::7], v2[::7] + 1.0, MergePolicy.NEVER)
    check(engine, model, sid, lo, hi)
    check(engine, model, sid, lo, hi, version=first)  # the old version still reads its own blocks
    check(engine, model, sid, lo, hi, version=first + 1)
    info = engine.cache_info()
    assert info["bytes"] <= info["capacity"]
    engine.close()


@pytest.mark.parametrize("budget", BUDGETS)
def test_obliterate_and_recreate_never_serves_old_blocks(tmp_path: Path, budget: int | None) -> None:
    engine = open_engine(tmp_path / "e.sqlite3", budget)
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    t, v = dense(5000, 1 << 40, 1000, 3)
    engine.insert(sid, t, v)
    engine.raw_values(sid, int(t[0]), int(t[-1]) + 1)  # cached
    engine.obliterate(sid)
    with pytest.raises(StreamNotFound):
        engine.raw_values(sid, int(t[0]), int(t[-1]) + 1)
    # The same uuid again, with the same times and other values: only the new values may come back.
    model = Model()
    engine.create_stream(sid)
    insert(engine, model, sid, t, v + 100.0, MergePolicy.NEVER)
    check(engine, model, sid, int(t[0]), int(t[-1]) + 1)
    engine.close()


def test_obliterate_frees_the_stream_entries(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "e.sqlite3")
    keep, gone = uuid.uuid4().bytes, uuid.uuid4().bytes
    for i, sid in enumerate((keep, gone)):
        engine.create_stream(sid)
        t, v = dense(30_000, 1 << 40, 1000, i)
        engine.insert(sid, t, v)
        engine.raw_values(sid, int(t[0]), int(t[-1]) + 1)
    both = engine.cache_info()["bytes"]
    engine.obliterate(gone)
    left = engine.cache_info()["bytes"]
    assert 0 < left < both
    # What is left is the kept stream: reading it again costs no new cache misses.
    misses = engine.cache_info()["misses"]
    engine.raw_values(keep, 0, 1 << 50)
    assert engine.cache_info()["misses"] == misses
    engine.close()


def test_warm_reads_hit_the_cache_and_memory_stays_bounded(tmp_path: Path) -> None:
    budget = 600_000  # about 37 000 points
    engine = Engine(tmp_path / "e.sqlite3", cache_bytes=budget)
    sids = [uuid.uuid4().bytes for _ in range(4)]
    for i, sid in enumerate(sids):
        engine.create_stream(sid)
        t, v = dense(25_000, 1 << 40, 1000, i)
        engine.insert(sid, t, v)
    engine.raw_values(sids[0], 0, 1 << 50)
    misses = engine.cache_info()["misses"]
    engine.raw_values(sids[0], 0, 1 << 50)
    assert engine.cache_info()["misses"] == misses, "a repeated read that fits must be served from cache"
    for sid in sids:  # 100 000 points: far more than the budget
        engine.raw_values(sid, 0, 1 << 50)
        info = engine.cache_info()
        assert 0 < info["bytes"] <= budget
    engine.close()


def engine_with_one_stream(path: Path, n: int, seed: int) -> tuple[Engine, bytes, np.ndarray, np.ndarray]:
    """A fresh engine (default cache) holding one stream of ``n`` dense points."""
    engine = Engine(path)
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    t, v = dense(n, 1 << 40, 1000, seed)
    engine.insert(sid, t, v)
    return engine, sid, t, v


def test_returned_arrays_do_not_alias_the_cache(tmp_path: Path) -> None:
    engine, sid, t, v = engine_with_one_stream(tmp_path / "e.sqlite3", 3000, 5)
    _, got_t, got_v = engine.raw_values(sid, 0, 1 << 50)
    got_t[:] = 0
    got_v[:] = -1.0
    for chunk_t, chunk_v in engine.iter_raw_values(sid, 0, 1 << 50)[1]:
        chunk_t[:] = 0
        chunk_v[:] = -1.0
    _, again_t, again_v = engine.raw_values(sid, 0, 1 << 50)
    np.testing.assert_array_equal(again_t, t)
    np.testing.assert_array_equal(again_v, v)
    engine.close()


@pytest.mark.parametrize("bad", [-1, 1.5, "big", True])
def test_bad_cache_size_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="cache_bytes"):
        Engine(tmp_path / "e.sqlite3", cache_bytes=bad)  # type: ignore[arg-type]


def cached_leaf_blocks(engine: Engine) -> int:
    """Leaf and group blocks in the engine's cache (internal nodes left out)."""
    return sum(isinstance(value, PointBlock) for _, value in engine._reader.cache.values())


def test_a_read_larger_than_the_cache_does_not_push_out_the_hot_blocks(tmp_path: Path) -> None:
    budget = 1 << 20  # about 64 000 points
    engine = Engine(tmp_path / "e.sqlite3", cache_bytes=budget)
    hot, big = uuid.uuid4().bytes, uuid.uuid4().bytes
    for i, (sid, n) in enumerate(((big, 200_000), (hot, 10_000))):
        engine.create_stream(sid)
        engine.insert(sid, *dense(n, 1 << 40, 1000, i))
    engine.raw_values(hot, 0, 1 << 50)
    before = cached_leaf_blocks(engine)
    assert before > 0
    _, t, _ = engine.raw_values(big, 0, 1 << 50)  # three times the budget: read, not admitted
    assert t.size == 200_000
    assert sum(c[0].size for c in engine.iter_raw_values(big, 0, 1 << 50)[1]) == 200_000
    assert cached_leaf_blocks(engine) <= before
    # A read that fits is admitted; once it is repeated (the cache is scan-resistant: a block read
    # only once passes through the small queue) it is served from the cache.
    fits = (1 << 40) + 30_000 * 1000
    engine.raw_values(big, 0, fits)
    engine.raw_values(big, 0, fits)
    misses = engine.cache_info()["misses"]
    engine.raw_values(big, 0, fits)
    assert engine.cache_info()["misses"] == misses
    assert cached_leaf_blocks(engine) > before
    assert engine.cache_info()["bytes"] <= budget
    engine.close()


def test_a_chunked_read_reports_whether_all_its_blocks_are_cached(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "e.sqlite3", cache_bytes=1 << 20)  # about 64 000 points
    small, big = uuid.uuid4().bytes, uuid.uuid4().bytes
    for i, (sid, n) in enumerate(((small, 20_000), (big, 200_000))):
        engine.create_stream(sid)
        engine.insert(sid, *dense(n, 1 << 40, 1000, i))
    engine._reader.cache.clear()
    _, cold = engine.iter_raw_pieces(small, 0, 1 << 50)
    assert not cold.cached
    assert sum(rows for _, _, rows in cold) == 20_000  # reading it fills the cache
    _, warm = engine.iter_raw_values(small, 0, 1 << 50)
    assert warm.cached
    warm.close()
    _, too_big = engine.iter_raw_pieces(big, 0, 1 << 50)
    assert not too_big.cached  # larger than the cache: never all there
    too_big.close()
    _, empty = engine.iter_raw_values(small, 0, 1 << 30)  # before every point: no block needed
    assert empty.cached and list(empty) == []
    engine.close()
    no_cache = Engine(tmp_path / "e.sqlite3", cache_bytes=0)
    assert not no_cache.iter_raw_pieces(small, 0, 1 << 50)[1].cached
    no_cache.close()


def test_pieces_of_cached_blocks_are_read_only_views(tmp_path: Path) -> None:
    engine, sid, t, _ = engine_with_one_stream(tmp_path / "e.sqlite3", 30_000, 9)
    _, pieces = engine.iter_raw_pieces(sid, 0, 1 << 50, chunk=7000)
    chunks = list(pieces)
    assert [rows for _, _, rows in chunks] == [7000] * 4 + [2000]
    for ts, vs, _ in chunks:
        assert all(not a.flags.writeable for a in ts + vs)
    np.testing.assert_array_equal(np.concatenate([x for ts, _, _ in chunks for x in ts]), t)
    engine.close()


@pytest.mark.parametrize("budget", BUDGETS)
def test_chunked_reads_decoded_ahead_match_reads_decoded_in_the_callers_thread(
    tmp_path: Path, budget: int | None
) -> None:
    # A cold read of several batches: decoded ahead in the decode pool (the engine's default) or in
    # the caller's thread (the server's senders), the chunks are the same points.
    path = tmp_path / "e.sqlite3"
    writer, sid, t, v = engine_with_one_stream(path, 400_000, 11)
    writer.close()
    chunks = {}
    for ahead in (True, False):
        engine = open_engine(path, budget)
        _, pieces = engine.iter_raw_pieces(sid, 0, 1 << 50, chunk=70_000, decode_ahead=ahead)
        assert not pieces.cached
        chunks[ahead] = [(np.concatenate(ts), np.concatenate(vs), n) for ts, vs, n in pieces]
        engine.close()
    assert [n for _, _, n in chunks[True]] == [70_000] * 5 + [50_000]
    for (ta, va, _), (tb, vb, _) in zip(chunks[True], chunks[False], strict=True):
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(va.view(np.int64), vb.view(np.int64))
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks[True]]), t)
    got_v = np.concatenate([c[1] for c in chunks[True]])
    np.testing.assert_array_equal(got_v.view(np.int64), v.view(np.int64))
    engine = open_engine(path, budget)  # left after one chunk: the batches still in the pool are dropped
    _, values = engine.iter_raw_values(sid, 0, 1 << 50, chunk=70_000)
    first_t, _ = next(iter(values))
    values.close()
    np.testing.assert_array_equal(first_t, t[:70_000])
    _, again, _ = engine.raw_values(sid, 0, 1 << 50)
    np.testing.assert_array_equal(again, t)
    engine.close()


def test_in_memory_reads_are_offered_only_when_nothing_must_be_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite3"
    engine = Engine(path)
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    t, v = dense(20_000, 1 << 40, 1000, 3)
    first = engine.insert(sid, t, v)
    latest = engine.insert(sid, t[:10] + 1, v[:10])  # a second version
    _, expected_t, expected_v = engine.raw_values(sid, 0, 1 << 50)  # brings every block into the cache
    found = engine.iter_raw_pieces_in_memory(sid, 0, 1 << 50, chunk=6000)
    assert found is not None and found[0] == latest and found[1].cached
    chunks = list(found[1])
    np.testing.assert_array_equal(np.concatenate([x for ts, _, _ in chunks for x in ts]), expected_t)
    values = engine.iter_raw_values_in_memory(sid, 0, 1 << 50, version=latest)
    assert values is not None
    np.testing.assert_array_equal(np.concatenate([c[1] for c in values[1]]), expected_v)
    # Anything that would need the database is declined, for the worker-thread path to do.
    assert engine.iter_raw_values_in_memory(sid, 0, 1 << 50, version=first) is None  # older version
    engine._reader.cache.clear()
    assert engine.iter_raw_pieces_in_memory(sid, 0, 1 << 50) is None  # nodes not cached
    engine.raw_values(sid, 0, 1 << 50)  # warm again
    assert engine.iter_raw_pieces_in_memory(sid, 0, 1 << 50) is not None
    engine.close()
    reopened = Engine(path)
    assert reopened.iter_raw_values_in_memory(sid, 0, 1 << 50) is None  # stream not loaded yet
    unknown = uuid.uuid4().bytes
    assert reopened.iter_raw_values_in_memory(unknown, 0, 1 << 50) is None  # the full path says why
    with pytest.raises(InvalidTimeRange):
        reopened.iter_raw_values_in_memory(sid, 10, 5)  # arguments are still checked
    reopened.close()
