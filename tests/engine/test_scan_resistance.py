"""The block cache survives scans, is sized from the machine's memory, and cold reads decode in parallel.

Warmth is judged by the cache's own counters (a read served from memory adds hits and no misses),
never by timing.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pingthings.server.config import DEFAULT_CACHE_MB, ServerConfig
from pingthings.server.engine import Engine
from pingthings.server.engine.block_cache import BlockCache
from pingthings.server.engine.blocks import BlockReader, PointBlock, _own
from pingthings.server.engine.cache_size import (
    MAX_DEFAULT_BYTES,
    MIN_DEFAULT_BYTES,
    default_cache_bytes,
)

PERIOD_120HZ = 8_333_333
ALL = (0, 1 << 61)


def dense(n: int, start: int, step: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` regularly spaced points with random values."""
    rng = np.random.default_rng(seed)
    return start + np.arange(n, dtype=np.int64) * step, np.round(rng.normal(50.0, 5.0, n), 3)


def new_stream(engine: Engine, n: int, step: int, seed: int, batch: int = 1_000_000) -> bytes:
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    t, v = dense(n, 1 << 50, step, seed)
    for lo in range(0, n, batch):
        engine.insert(sid, t[lo : lo + batch], v[lo : lo + batch])
    return sid


def misses_and_hits(engine: Engine) -> tuple[int, int]:
    info = engine.cache_info()
    return info["misses"], info["hits"]


def read_is_warm(engine: Engine, sid: bytes, n: int) -> bool:
    """Read the whole stream; True when every block came from the cache (hits, no misses)."""
    misses, hits = misses_and_hits(engine)
    _, t, _ = engine.raw_values(sid, *ALL)
    assert t.size == n
    after_misses, after_hits = misses_and_hits(engine)
    return after_misses == misses and after_hits > hits


def test_a_one_time_scan_does_not_evict_the_hot_set(tmp_path: Path) -> None:
    # 4 MiB: the hot stream (~0.7 MB) and the scanned one (~3.3 MB) each fit, both together do not.
    engine = Engine(tmp_path / "e.sqlite3", cache_bytes=4 << 20)
    hot = new_stream(engine, 40_000, 1000, 1)
    scanned = new_stream(engine, 200_000, 1000, 2)
    engine._reader.cache.clear()
    engine.raw_values(hot, *ALL)
    assert read_is_warm(engine, hot, 40_000)  # read again: now it is the hot set
    engine.raw_values(scanned, *ALL)  # one large read, never repeated
    assert read_is_warm(engine, hot, 40_000), "the scan pushed the hot stream out of the cache"
    assert engine.cache_info()["bytes"] <= 4 << 20
    engine.close()


def test_a_repeated_read_is_warm_after_it_was_evicted_once(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "e.sqlite3", cache_bytes=4 << 20)
    first = new_stream(engine, 150_000, 1000, 3)
    second = new_stream(engine, 150_000, 1000, 4)
    engine._reader.cache.clear()
    engine.raw_values(first, *ALL)
    engine.raw_values(second, *ALL)  # pushes most of the first out (it was read only once)
    assert not read_is_warm(engine, first, 150_000)  # remembered as a ghost: now admitted for good
    assert read_is_warm(engine, first, 150_000)
    engine.close()


def test_two_alternating_day_long_streams_are_warm_on_their_second_read(tmp_path: Path) -> None:
    # A day of one 120 Hz channel is ~10^7 points (~165 MB decoded); the default cache holds two.
    n = 10_000_000
    engine = Engine(tmp_path / "e.sqlite3")
    assert engine.cache_info()["capacity"] == default_cache_bytes()
    a = new_stream(engine, n, PERIOD_120HZ, 5)
    b = new_stream(engine, n, PERIOD_120HZ, 6)
    engine._reader.cache.clear()
    assert not read_is_warm(engine, a, n)
    assert not read_is_warm(engine, b, n)
    assert read_is_warm(engine, a, n), "the second read of the first stream was cold"
    assert read_is_warm(engine, b, n), "the second read of the second stream was cold"
    engine.close()


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        (512 << 20, MIN_DEFAULT_BYTES),  # a small board: the floor
        (4 << 30, 1 << 30),  # a laptop: a quarter
        (24 << 30, 6 << 30),
        (1 << 40, MAX_DEFAULT_BYTES),  # a big server: the ceiling
    ],
)
def test_default_cache_size_is_a_quarter_of_memory_within_bounds(memory: int, expected: int) -> None:
    assert default_cache_bytes(memory) == expected


def test_the_server_default_is_the_derived_size_and_cache_mb_overrides_it(tmp_path: Path) -> None:
    assert default_cache_bytes() >> 20 == DEFAULT_CACHE_MB
    assert ServerConfig(tmp_path).cache_bytes == DEFAULT_CACHE_MB << 20
    assert ServerConfig(tmp_path, cache_mb=64).cache_bytes == 64 << 20


def _block(points: np.ndarray) -> PointBlock:
    return PointBlock(points, points.astype(np.float64), None)


def test_a_block_kept_for_a_second_round_stops_holding_its_decode_batch() -> None:
    batch = np.arange(1000, dtype=np.int64)
    cache = BlockCache(10_000, keep=_own)
    cache.put(1, _block(batch[:100]), 1000)  # a view of the batch
    assert cache.get(1) is not None  # read again: it will be promoted
    for key in range(2, 12):  # fill the cache: the small queue gives its oldest up
        cache.put(key, _block(np.arange(100, dtype=np.int64)), 1000)
    kept = cache.get(1)
    assert isinstance(kept, PointBlock)
    assert kept.t.base is None and not kept.t.flags.writeable  # a private, read-only copy
    np.testing.assert_array_equal(kept.t, batch[:100])
    stats = cache.stats()
    assert stats["promotions"] >= 1 and stats["bytes"] <= 10_000


def test_an_address_evicted_once_comes_back_into_the_main_queue() -> None:
    cache = BlockCache(5_000)
    for key in range(10):
        cache.put(key, object(), 1000)  # read once each: the oldest go to the ghost list
    assert cache.get(0) is None
    cache.put(0, object(), 1000)
    stats = cache.stats()
    assert stats["ghost_hits"] == 1 and stats["main_bytes"] == 1000
    assert stats["bytes"] <= 5_000 and len(cache) == 5


@pytest.mark.parametrize("step", [1000, 64_000])  # full leaves; small leaves stored in groups
@pytest.mark.parametrize("budget", [None, 0])
def test_cold_reads_decoded_in_the_pool_give_the_stored_points(
    tmp_path: Path, step: int, budget: int | None
) -> None:
    n = 400_000  # several hundred blocks: several decode batches, run in the pool
    path = tmp_path / "e.sqlite3"
    writer = Engine(path)
    sid = new_stream(writer, n, step, 7)
    writer.close()
    t, v = dense(n, 1 << 50, step, 7)
    engine = Engine(path) if budget is None else Engine(path, cache_bytes=budget)
    _, got_t, got_v = engine.raw_values(sid, *ALL)
    assert any(th.name.startswith("pingthings-decode") for th in threading.enumerate())
    np.testing.assert_array_equal(got_t, t)
    np.testing.assert_array_equal(got_v, v)
    engine._reader.cache.clear()
    chunks = list(engine.iter_raw_pieces(sid, *ALL, chunk=30_000)[1])
    assert [rows for _, _, rows in chunks] == [30_000] * (n // 30_000) + [n % 30_000]
    np.testing.assert_array_equal(np.concatenate([x for _, vs, _ in chunks for x in vs]), v)
    engine._reader.cache.clear()
    lo, hi = int(t[1234]) + 1, int(t[n - 999])
    _, part_t, _ = engine.raw_values(sid, lo, hi)
    np.testing.assert_array_equal(part_t, t[1235 : n - 999])
    engine._reader.cache.clear()
    assert engine.count(sid, lo, hi)[1] == n - 999 - 1235
    engine.close()


def test_a_cold_read_closed_early_leaves_the_engine_usable(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "e.sqlite3")
    sid = new_stream(engine, 400_000, 1000, 8)
    engine._reader.cache.clear()
    _, chunks = engine.iter_raw_values(sid, *ALL, chunk=10_000)
    first = next(chunks)
    assert first[0].size == 10_000
    chunks.close()
    _, t, _ = engine.raw_values(sid, *ALL)
    assert t.size == 400_000
    engine.close()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_decodes_with_a_pool_of_its_own(tmp_path: Path) -> None:
    import multiprocessing as mp

    engine = Engine(tmp_path / "e.sqlite3")
    sid = new_stream(engine, 300_000, 1000, 9)
    engine._reader.cache.clear()
    assert engine.raw_values(sid, *ALL)[1].size == 300_000  # the parent's pool now exists
    engine.close()
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_count_in_child, (str(tmp_path / "e.sqlite3"), sid)).get(timeout=120)
    assert got == 300_000


def _count_in_child(path: str, sid: bytes) -> int:
    engine = Engine(path, cache_bytes=0)
    try:
        return int(engine.raw_values(sid, *ALL)[1].size)  # decoded in the pool: hangs without one
    finally:
        engine.close()


@pytest.mark.parametrize("ahead", [False, True])
def test_a_cold_chunked_read_decodes_in_its_own_thread_unless_asked_to_decode_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: bool
) -> None:
    # The server's senders (decode_ahead=False) decode in their own worker thread: their event loop
    # already sends while it reads, and the pool only added hand-offs. By default the engine decodes
    # the next batches in the pool while the caller works on this one (pco decode releases the GIL).
    n = 400_000
    path = tmp_path / "e.sqlite3"
    writer = Engine(path)
    sid = new_stream(writer, n, 1000, 7)
    writer.close()
    threads: list[str] = []
    original = BlockReader._blocks

    def spy(self: BlockReader, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BlockReader, "_blocks", spy)
    engine = Engine(path, cache_bytes=0)
    chunks = list(engine.iter_raw_pieces(sid, *ALL, chunk=30_000, decode_ahead=ahead)[1])
    assert sum(rows for _, _, rows in chunks) == n
    assert len(threads) > 1
    here = threading.current_thread().name
    assert (here not in threads) if ahead else set(threads) == {here}
    engine.close()
