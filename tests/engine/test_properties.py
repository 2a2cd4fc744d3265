"""Property tests: random inserts (every merge policy), deletes and queries against a brute-force model.

Batches are generated from a seed with numpy so that they can be large enough to split leaves (> 1024
points in one bucket) and dense enough to collide (duplicate timestamps, duplicate values).
Set ``ENGINE_EXAMPLES`` (default 100) and ``ENGINE_STEPS`` (default 14) to run more and longer
sequences, e.g. 1500 and 30 after changing the tree code (with ``--timeout=0``).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pingthings.server.engine import Buffering, Engine, GroupInsert, MergePolicy
from pingthings.server.errors import NoSuchPoint
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

from .model import BufferedModel, Model

BASES = (0, 1_700_000_000 * 10**9 + 12345, -(1 << 59) + 777, TIME_LIMIT - (1 << 45))


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    """A batch of points clustered around one base time."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.sampled_from([0, 1, 2, 5, 40, 300, 1100, 2600]))
    base = draw(st.sampled_from(BASES))
    spread = draw(st.integers(3, 44))
    grid = draw(st.integers(0, spread))
    rng = np.random.default_rng(seed)
    t = base + (rng.integers(0, 1 << (spread - grid), n) << grid)
    t = np.clip(t, MIN_TIME, TIME_LIMIT - 2)
    if draw(st.booleans()):
        v = rng.integers(0, 4, n).astype(np.float64)
    else:
        v = np.round(rng.normal(100.0, 15.0, n), 3)
    if n and draw(st.integers(0, 9)) == 0:
        t[0] = draw(st.sampled_from([MIN_TIME, TIME_LIMIT - 2]))
    return t.tolist(), v.tolist()


#: Spacings of regular streams: 1 ns, 1 us, 5 us (leaves of ~200 points, two groups per node), 64 us
#: (leaves of ~16 points), 240 Hz (a pw-32 bucket holds ~1030 points: leaves of ~16) and 120 Hz.
SPACINGS = (1, 1000, 5000, 64_000, 4_166_667, 8_333_333)


@st.composite
def regular_batches(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    """A dense, regularly spaced batch (optionally jittered) that starts near earlier ones.

    Such data splits buckets into nodes whose leaves are small, so they are stored in leaf groups;
    overlapping and adjacent batches make later inserts merge into and regroup those leaves.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    spacing = draw(st.sampled_from(SPACINGS))
    n = draw(st.sampled_from([1, 30, 300, 1100, 2600, 9000]))
    base = draw(st.sampled_from(BASES[:3]))
    rng = np.random.default_rng(seed)
    t = base + draw(st.integers(0, 6)) * (1100 * spacing // 2) + np.arange(n, dtype=np.int64) * spacing
    if draw(st.booleans()):
        t += rng.integers(0, max(1, spacing // 3), n)
    v = np.round(rng.normal(60.0, 1.0, n), 4) if draw(st.booleans()) else rng.integers(0, 3, n) * 1.0
    return t.tolist(), v.tolist()


@st.composite
def ranges(draw: st.DrawFn) -> tuple[int, int]:
    """A query range near one of the bases (sometimes the whole axis)."""
    if draw(st.integers(0, 7)) == 0:
        return MIN_TIME, TIME_LIMIT - 1
    base = draw(st.sampled_from(BASES))
    scale = draw(st.integers(2, 46))
    lo = base + draw(st.integers(-(1 << scale), 1 << scale))
    hi = lo + draw(st.integers(1, 1 << (scale + 1)))
    lo = max(MIN_TIME, lo)
    hi = min(TIME_LIMIT - 1, hi)
    if lo >= hi:
        lo, hi = MIN_TIME, TIME_LIMIT - 1
    return lo, hi


def assert_windows(got, expected: list[tuple]) -> None:
    """Compare StatWindows with model tuples (time, count, min, mean, max, std)."""
    assert len(got) == len(expected)
    if not expected:
        return
    e = np.array([x[1:] for x in expected], dtype=np.float64)
    np.testing.assert_array_equal(got.time, np.array([x[0] for x in expected], dtype=np.int64))
    np.testing.assert_array_equal(got.count, e[:, 0].astype(np.uint64))
    np.testing.assert_array_equal(got.min, e[:, 1])
    np.testing.assert_array_equal(got.max, e[:, 3])
    np.testing.assert_allclose(got.mean, e[:, 2], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.stddev, e[:, 4], rtol=1e-9, atol=1e-7)


class EngineMachine(RuleBasedStateMachine):
    """Drives one stream of a real engine and the model with the same operations.

    ``CACHE_BYTES`` sizes the engine's decoded-block cache (None: the default); subclasses below run the
    same machine with a cache so small that it evicts all the time, and with no cache at all.
    """

    CACHE_BYTES: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.engine = self._open()
        self.model = Model()
        self.sid = uuid.uuid4().bytes

    def _open(self) -> Engine:
        path = Path(self.tmp.name) / "e.sqlite3"
        return Engine(path) if self.CACHE_BYTES is None else Engine(path, cache_bytes=self.CACHE_BYTES)

    def teardown(self) -> None:
        self.engine.close()
        self.tmp.cleanup()

    @initialize()
    def create(self) -> None:
        assert self.engine.create_stream(self.sid) == FIRST_VERSION

    def _version(self, pick: int) -> int:
        """The version a read asks for (0: latest); the model learns it will be read."""
        ver = 0 if pick == 0 else FIRST_VERSION + pick % (self.model.latest - FIRST_VERSION + 1)
        self.model.seal_for(ver)
        return ver

    @rule(
        batch=batches(),
        policy=st.sampled_from(list(MergePolicy)),
        bits=st.one_of(st.none(), st.integers(0, 12)),
    )
    def insert(self, batch: tuple[list[int], list[float]], policy: MergePolicy, bits: int | None) -> None:
        times, values = batch
        if bits and times and max(times) >= TIME_LIMIT - (1 << 12):
            bits = None  # rounding up could leave the valid range; that case has its own test
        got = self.engine.insert(self.sid, np.array(times, dtype=np.int64), np.array(values), policy, bits)
        assert got == self.model.insert(times, values, policy, bits)

    @rule(batch=regular_batches(), policy=st.sampled_from(list(MergePolicy)))
    def insert_regular(self, batch: tuple[list[int], list[float]], policy: MergePolicy) -> None:
        times, values = batch
        got = self.engine.insert(self.sid, np.array(times, dtype=np.int64), np.array(values), policy)
        assert got == self.model.insert(times, values, policy, None)

    @rule()
    def reopen(self) -> None:
        """Close and reopen the database: everything must come back from disk alone."""
        self.engine.close()
        self.engine = self._open()
        self.model.seal()

    @rule(r=ranges())
    def delete(self, r: tuple[int, int]) -> None:
        assert self.engine.delete(self.sid, *r) == self.model.delete(*r)

    @rule(r=ranges(), pick=st.integers(0, 1000))
    def raw_values(self, r: tuple[int, int], pick: int) -> None:
        ver = self._version(pick)
        got_ver, t, v = self.engine.raw_values(self.sid, *r, version=ver)
        assert got_ver == (ver or self.model.latest)
        et, ev = self.model.raw(*r, version=ver)
        np.testing.assert_array_equal(t, et)
        np.testing.assert_array_equal(v.view(np.int64), ev.view(np.int64))
        chunks = self.engine.iter_raw_values(self.sid, *r, version=ver, chunk=777)[1]
        parts = list(chunks)
        assert all(p[0].size == 777 for p in parts[:-1])  # exact chunks, only the last shorter
        assert all(0 < p[0].size <= 777 and p[0].size == p[1].size for p in parts)
        joined = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        np.testing.assert_array_equal(joined, et)
        pieces = list(self.engine.iter_raw_pieces(self.sid, *r, version=ver, chunk=777)[1])
        assert [rows for _, _, rows in pieces] == [p[0].size for p in parts]
        for (ts, vs, rows), (pt, pv) in zip(pieces, parts, strict=True):
            assert sum(t.size for t in ts) == sum(v.size for v in vs) == rows
            np.testing.assert_array_equal(np.concatenate(ts), pt)
            np.testing.assert_array_equal(np.concatenate(vs).view(np.int64), pv.view(np.int64))

    @rule(r=ranges(), pick=st.integers(0, 1000), pw=st.integers(0, 63))
    def aligned_windows(self, r: tuple[int, int], pick: int, pw: int) -> None:
        ver = self._version(pick)
        _, got = self.engine.aligned_windows(self.sid, *r, pw, version=ver)
        assert_windows(got, self.model.aligned_windows(*r, pw, version=ver))

    @rule(r=ranges(), pick=st.integers(0, 1000), parts=st.integers(1, 40), extra=st.integers(0, 1000))
    def windows(self, r: tuple[int, int], pick: int, parts: int, extra: int) -> None:
        ver = self._version(pick)
        lo, hi = r
        width = max(1, (hi - lo) // parts + extra)
        _, got = self.engine.windows(self.sid, lo, hi, width, version=ver)
        assert_windows(got, self.model.windows(lo, hi, width, version=ver))

    @rule(r=ranges(), pick=st.integers(0, 1000), backward=st.booleans())
    def nearest(self, r: tuple[int, int], pick: int, backward: bool) -> None:
        ver = self._version(pick)
        expected = self.model.nearest(r[0], backward, version=ver)
        if expected is None:
            try:
                self.engine.nearest(self.sid, r[0], backward, version=ver)
            except NoSuchPoint:
                return
            raise AssertionError("expected NoSuchPoint")
        _, t, v = self.engine.nearest(self.sid, r[0], backward, version=ver)
        assert t == expected
        mt, mv = self.model.points(ver)
        assert v in mv[mt == t].tolist()

    @rule(r=ranges(), pick=st.integers(0, 1000))
    def count(self, r: tuple[int, int], pick: int) -> None:
        ver = self._version(pick)
        assert self.engine.count(self.sid, *r, version=ver)[1] == self.model.count(*r, version=ver)

    @rule(a=st.integers(0, 1000), b=st.integers(0, 1000), res=st.integers(0, 63))
    def changes(self, a: int, b: int, res: int) -> None:
        va, vb = sorted((self._version(a) or self.model.latest, self._version(b) or self.model.latest))
        self.model.seal_for(vb)
        got_ver, starts, ends = self.engine.changes(self.sid, va, vb, res)
        assert got_ver == vb
        assert np.all(starts < ends)
        assert np.all(starts[1:] > ends[:-1]), "ranges must be sorted, disjoint and coalesced"
        step = 1 << res
        assert all(s % step == 0 or s == MIN_TIME for s in starts.tolist())
        assert all(e % step == 0 or e == TIME_LIMIT for e in ends.tolist())
        diff = np.array(self.model.differing_times(va, vb), dtype=np.int64)
        if diff.size:
            idx = np.searchsorted(starts, diff, side="right") - 1
            covered = (idx >= 0) & (diff < ends[np.maximum(idx, 0)])
            assert covered.all(), f"uncovered changed times {diff[~covered][:5]}"

    @invariant()
    def latest_matches(self) -> None:
        assert self.engine.latest_version(self.sid) == self.model.latest

    @invariant()
    def cache_within_budget(self) -> None:
        info = self.engine.cache_info()
        assert info["bytes"] <= info["capacity"]


EngineMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("ENGINE_EXAMPLES", "100")),
    stateful_step_count=int(os.environ.get("ENGINE_STEPS", "14")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestEngineAgainstModel = EngineMachine.TestCase


class TinyCacheMachine(EngineMachine):
    """The same machine with a cache of a few blocks, so entries are evicted on almost every read."""

    CACHE_BYTES = 40_000


class NoCacheMachine(EngineMachine):
    """The same machine with the cache disabled (every read decodes from SQLite)."""

    CACHE_BYTES = 0


_fewer = max(10, int(os.environ.get("ENGINE_EXAMPLES", "100")) // 2)
TinyCacheMachine.TestCase.settings = settings(EngineMachine.TestCase.settings, max_examples=_fewer)
NoCacheMachine.TestCase.settings = settings(EngineMachine.TestCase.settings, max_examples=_fewer)
TestEngineTinyCache = TinyCacheMachine.TestCase
TestEngineNoCache = NoCacheMachine.TestCase


class BufferedMachine(EngineMachine):
    """The same machine with buffered ingest on: small inserts share a pending version until a read,
    delete, reopen, policy change or overflow seals it (the model mirrors those rules)."""

    MAX_POINTS = 4096

    def __init__(self) -> None:
        super().__init__()
        self.model = BufferedModel(self.MAX_POINTS)

    @invariant()
    def latest_matches(self) -> None:
        """Checked without merging (latest_version would seal the open version after every step)."""
        assert self.engine.peek_version(self.sid) == self.model.latest

    @rule()
    def latest_version(self) -> None:
        """Asking for the latest version seals the open one, which later inserts no longer join."""
        self.model.seal()
        assert self.engine.latest_version(self.sid) == self.model.latest

    @rule(
        group=st.lists(st.tuples(batches(), st.sampled_from(list(MergePolicy))), min_size=1, max_size=4),
        wait=st.booleans(),
    )
    def insert_group(
        self, group: list[tuple[tuple[list[int], list[float]], MergePolicy]], wait: bool
    ) -> None:
        """A group commit, with what it leaves over inserted one by one after it (as the server's
        ingest writer does), returns and stores what the inserts one after another would."""
        inserts = [
            GroupInsert(self.sid, np.array(times, dtype=np.int64), np.array(values), policy)
            for (times, values), policy in group
        ]
        results = self.engine.insert_group(inserts, wait=wait)
        for item, result in zip(inserts, results, strict=True):
            if result is None:
                result = self.engine.insert(item.uuid, item.times, item.values, item.merge)
            assert result == self.model.insert(item.times.tolist(), item.values.tolist(), item.merge, None)

    def _open(self) -> Engine:
        path = Path(self.tmp.name) / "e.sqlite3"
        return Engine(path, buffering=Buffering(max_points=self.MAX_POINTS, max_age=1e6))


BufferedMachine.TestCase.settings = EngineMachine.TestCase.settings
TestEngineBuffered = BufferedMachine.TestCase
