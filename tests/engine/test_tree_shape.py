"""Structural properties: statistics stop at covering slots, leaves split, the leaf codec round-trips."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pingthings.server.engine import Engine
from pingthings.wire.blocks.leaf_codec import POINT_KINDS, decode_leaf, decode_leaves, encode_leaf
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

PERIOD = 8_333_333  # 120 Hz


def spy_reads(engine: Engine) -> list[bytes]:
    """Record every block the engine fetches from SQLite (the real store still answers)."""
    seen: list[bytes] = []
    store = engine._store
    original = store.read_blocks

    def read_blocks(addrs: Sequence[int]) -> dict[int, bytes]:
        out = original(addrs)
        seen.extend(out.values())
        return out

    store.read_blocks = read_blocks  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("period", [PERIOD, 4_166_667], ids=["120Hz", "240Hz-leaf-groups"])
def test_statistics_do_not_read_covered_leaves(tmp_path: Path, period: int) -> None:
    sid = uuid.uuid4().bytes
    t = 10**18 + np.arange(400_000, dtype=np.int64) * period
    v = np.sin(np.arange(t.size) / 1000.0)
    with Engine(tmp_path) as eng:
        eng.create_stream(sid)
        for i in range(0, t.size, 50_000):
            eng.insert(sid, t[i : i + 50_000], v[i : i + 50_000])
    with Engine(tmp_path) as eng:  # cold caches
        seen = spy_reads(eng)
        _, w = eng.aligned_windows(sid, MIN_TIME, TIME_LIMIT - 1, 36)
        assert int(w.count.sum()) == t.size and len(w) > 20
        assert seen and not any(b[0] in POINT_KINDS for b in seen), "aligned windows read a leaf"
        # Arbitrary windows read leaves only where a window edge cuts a bucket: at most 2 per window.
        seen.clear()
        width = 123_456_789_012
        _, w = eng.windows(sid, int(t[0]), int(t[-1]), width)
        leaves = sum(b[0] in POINT_KINDS for b in seen)
        assert 0 < leaves <= 2 * len(w) + 2
        assert int(w.count.sum()) == int(((t >= t[0]) & (t < t[0] + len(w) * width)).sum())
        seen.clear()
        assert eng.count(sid)[1] == t.size
        assert not any(b[0] in POINT_KINDS for b in seen), "a full count read a leaf"


def test_one_timestamp_many_times_splits_to_the_bottom(engine: Engine, stream: bytes) -> None:
    # 5000 points at one instant cannot be split by time: they end in one unbounded pw-2 leaf.
    t = np.full(5000, 123_456_789, dtype=np.int64)
    v = np.arange(5000.0)
    engine.insert(stream, t, v)
    engine.insert(stream, t[:10] + 1, v[:10])
    _, got_t, got_v = engine.raw_values(stream, 0, 10**10)
    assert got_t.size == 5010
    np.testing.assert_array_equal(got_v[:5000], v)
    _, w = engine.aligned_windows(stream, 0, 10**10, 0)
    assert w.time.tolist() == [123_456_789, 123_456_790] and w.count.tolist() == [5000, 10]
    assert engine.nearest(stream, 123_456_790, backward=True)[1] == 123_456_789


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)


@settings(max_examples=150, deadline=None)
@given(
    times=st.lists(st.integers(MIN_TIME, TIME_LIMIT - 2), max_size=60),
    values=st.lists(finite_or_not, min_size=60, max_size=60),
    f32=st.booleans(),
)
def test_leaf_codec_round_trips_any_bits(times: list[int], values: list[float], f32: bool) -> None:
    t = np.sort(np.array(times, dtype=np.int64))
    v = np.array(values[: t.size], dtype=np.float64)
    if f32:
        with np.errstate(over="ignore"):
            v = v.astype(np.float32).astype(np.float64)
    got_t, got_v = decode_leaf(encode_leaf(t, v))
    np.testing.assert_array_equal(got_t, t)
    np.testing.assert_array_equal(got_v.view(np.uint64), v.view(np.uint64))


def test_leaf_codec_batch_decoding_mixes_layouts() -> None:
    rng = np.random.default_rng(5)
    leaves = []
    for n in (0, 1, 2, 3, 700, 1024, 17):
        t = np.sort(rng.integers(-(10**15), 10**15, n))
        if n == 700:
            t = 10**18 + np.arange(n, dtype=np.int64) * 1000 * 8333  # common divisor 8,333,000
        v = rng.normal(0, 1e6, n) if n % 2 else rng.normal(0, 1, n).astype(np.float32).astype(float)
        leaves.append((t, v))
    got_t, got_v = decode_leaves([encode_leaf(t, v) for t, v in leaves])
    np.testing.assert_array_equal(got_t, np.concatenate([t for t, _ in leaves]))
    np.testing.assert_array_equal(got_v, np.concatenate([v for _, v in leaves]))


def test_statistics_match_numpy_on_offset_noisy_signal(engine: Engine, stream: bytes) -> None:
    # A large offset with small noise (mean/stddev = 1e6) is where a sum-of-squares variance would keep
    # only 4 digits. Slot means are float64, so the error grows like 1e-16 * mean / stddev.
    rng = np.random.default_rng(11)
    t = 10**18 + np.arange(300_000, dtype=np.int64) * PERIOD + rng.integers(-1000, 1000, 300_000)
    v = 1e6 + rng.normal(0.0, 1.0, t.size)
    engine.insert(stream, t, v)
    for pw in (27, 33, 38, 44):
        end = ((int(t[-1]) >> pw) + 1) << pw  # past the last point's window (end is rounded down)
        _, w = engine.aligned_windows(stream, int(t[0]), end, pw)
        keys = t >> pw
        starts = np.flatnonzero(np.diff(keys, prepend=keys[0] - 1))
        np.testing.assert_array_equal(w.time, keys[starts] << pw)
        groups = np.split(v, starts[1:])
        np.testing.assert_array_equal(w.count, [g.size for g in groups])
        np.testing.assert_allclose(w.mean, [g.mean() for g in groups], rtol=1e-12)
        np.testing.assert_allclose(w.stddev, [g.std() for g in groups], rtol=1e-9)
        np.testing.assert_array_equal(w.min, [g.min() for g in groups])
        np.testing.assert_array_equal(w.max, [g.max() for g in groups])


def test_statistics_over_leaves_of_different_depths(engine: Engine, stream: bytes) -> None:
    # 1100 points in 8 ns force leaves at the bottom level; a lone point near the end stays a root leaf.
    rng = np.random.default_rng(2)
    t = rng.integers(0, 8, 1100)
    v = rng.normal(100, 15, 1100)
    engine.insert(stream, t, v)
    engine.insert(stream, np.array([TIME_LIMIT - 2]), np.array([5.0]))
    _, w = engine.aligned_windows(stream, MIN_TIME, TIME_LIMIT - 1, 1)  # end rounds down to TIME_LIMIT - 2
    assert w.time.tolist() == [0, 2, 4, 6]
    assert w.count.tolist() == [int(((t >> 1) == k).sum()) for k in range(4)]
    assert engine.count(stream, 1, TIME_LIMIT - 2)[1] == int((t >= 1).sum())
    width = 2**58 + 1  # windows from -3 that straddle buckets of every level
    _, w = engine.windows(stream, -3, TIME_LIMIT - 1, width)
    end = -3 + len(w) * width
    assert int(w.count.sum()) == 1100 + int(end > TIME_LIMIT - 2)
    assert w.count[0] == 1100
