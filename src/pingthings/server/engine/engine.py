"""The public storage engine: streams, versions, inserts, deletes and every query.

Concurrency: each stream has a lock that serialises its writers (build the new tree, commit, publish);
writers of different streams build in parallel and only share the SQLite write transaction. Readers never
lock: they pick a version's root (the latest one is published as one tuple after its commit) and read
immutable blocks, so a pinned version can never be seen half-written.
"""

from __future__ import annotations

import threading
import time as time_mod
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pingthings.server.engine import query
from pingthings.server.engine.blocks import DEFAULT_CACHE_BYTES, BlockReader, MissingBlock
from pingthings.server.engine.changes import changed_ranges
from pingthings.server.engine.merge import MergePolicy, prepare_batch
from pingthings.server.engine.stats import StatWindows
from pingthings.server.engine.store import BlockStore
from pingthings.server.engine.tree import TreeWriter
from pingthings.server.engine.validate import (
    as_int,
    as_points,
    as_uuid,
    check_insert,
    check_point_width,
    check_range,
    round_times,
)
from pingthings.server.errors import (
    InvalidPointWidth,
    InvalidTimeRange,
    InvalidVersions,
    NoSuchPoint,
    SameStream,
    ServerError,
    StreamNotFound,
    VersionNotAvailable,
    WrongArgs,
)
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT
from pingthings.wire.status import StatusCode

T = TypeVar("T")

#: Default number of points per chunk of :meth:`Engine.iter_raw_values`.
DEFAULT_CHUNK = 50_000
#: Most windows one Windows query may produce (each costs ~48 bytes of memory).
MAX_WINDOWS = 1 << 26
#: File name used when the engine is given a directory.
DB_NAME = "engine.sqlite3"


class RawChunks(Iterator[T]):
    """The chunks of one raw read (see :meth:`Engine.iter_raw_values` and :meth:`Engine.iter_raw_pieces`).

    Attributes
    ----------
    cached
        True when every block the read needs was decoded in the block cache as the read began: then
        each chunk is at most one memory copy away, cheap enough to produce without a worker thread.
    """

    def __init__(self, chunks: Generator[T, None, None], cached: bool) -> None:
        self._chunks = chunks
        self.cached = cached

    def __iter__(self) -> RawChunks[T]:
        return self

    def __next__(self) -> T:
        return next(self._chunks)

    def close(self) -> None:
        """Stop the read early and release what it holds."""
        self._chunks.close()


def _raw_args(start: Any, end: Any, chunk: Any) -> tuple[int, int, int]:
    """The checked ``(lo, hi, chunk)`` of a chunked raw read."""
    lo, hi = check_range(start, end)
    size = as_int(chunk, "chunk")
    if size < 1:
        raise WrongArgs(f"chunk must be at least 1, got {size}")
    return lo, hi, size


class _Stream:
    """In-memory state of one live stream."""

    __slots__ = ("dead", "last_wall", "lock", "next_addr", "sid", "state", "uuid")

    def __init__(self, uuid: bytes, sid: int, latest: int, root: int) -> None:
        self.uuid = uuid
        self.sid = sid
        self.state = (latest, root)  # published atomically after each commit
        self.lock = threading.Lock()
        self.next_addr: int | None = None
        self.last_wall: int | None = None
        self.dead = False


@dataclass(frozen=True)
class _RawPlan:
    """A checked raw read: its stream, range, chunk size, version, leaves and whether all are cached."""

    stream: _Stream
    lo: int
    hi: int
    chunk: int
    version: int
    refs: query.LeafRefs
    cached: bool


class Engine:
    """Versioned, copy-on-write statistics trees of many streams in one SQLite database.

    Parameters
    ----------
    path
        SQLite file (created with its parent directories if missing), or an existing directory in which
        ``engine.sqlite3`` is used.
    clock
        Wall clock in ns since the epoch, used to stamp commits (injectable for tests).
    cache_bytes
        Budget in bytes of the decoded-block cache (internal nodes, leaves and leaf groups, shared by all
        streams); 0 disables it. Blocks are immutable, so cached reads never need invalidation.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], int] = time_mod.time_ns,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if not isinstance(cache_bytes, int) or isinstance(cache_bytes, bool) or cache_bytes < 0:
            raise ValueError(f"cache_bytes must be a non-negative integer, got {cache_bytes!r}")
        p = Path(path)
        if p.is_dir():
            p = p / DB_NAME
        p.parent.mkdir(parents=True, exist_ok=True)
        self.path = p
        self._clock = clock
        self._store = BlockStore(p)
        self._reader = BlockReader(self._store, cache_bytes)
        self._streams: dict[bytes, _Stream] = {}
        self._streams_lock = threading.Lock()

    def close(self) -> None:
        """Close the database; the engine cannot be used afterwards."""
        self._store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ streams
    def _stream(self, uuid: Any) -> _Stream:
        u = as_uuid(uuid)
        st = self._streams.get(u)
        if st is not None:
            return st
        # Load under the lock that obliterate also holds while deleting, so a stream being obliterated
        # can never be cached again after it was dropped.
        with self._streams_lock:
            st = self._streams.get(u)
            if st is None:
                row = self._store.load_stream(u)
                if row is None:
                    raise StreamNotFound()
                st = _Stream(u, *row)
                self._streams[u] = st
        return st

    def create_stream(self, uuid: Any) -> int:
        """Create an empty stream; returns its first version (10). SameStream if it exists."""
        u = as_uuid(uuid)
        with self._streams_lock:
            if u in self._streams or self._store.load_stream(u) is not None:
                raise SameStream("a stream with this uuid already exists")
            wall = self._clock()
            sid = self._store.create_stream(u, FIRST_VERSION, wall)
            st = _Stream(u, sid, FIRST_VERSION, 0)
            st.last_wall = wall
            self._streams[u] = st
        return FIRST_VERSION

    def exists(self, uuid: Any) -> bool:
        """Whether ``uuid`` names a live stream."""
        try:
            self._stream(uuid)
        except StreamNotFound:
            return False
        return True

    def obliterate(self, uuid: Any) -> None:
        """Delete a stream with every version and block; later calls raise StreamNotFound."""
        st = self._stream(uuid)
        with st.lock:
            if st.dead:
                raise StreamNotFound()
            with self._streams_lock:
                self._store.obliterate(st.uuid, st.sid)
                st.dead = True
                self._streams.pop(st.uuid, None)
                self._reader.forget_stream(st.sid)

    # ----------------------------------------------------------------- versions
    def latest_version(self, uuid: Any) -> int:
        """The stream's newest version."""
        return self._stream(uuid).state[0]

    def flush(self, uuid: Any) -> int:
        """Commits are immediate, so this only returns the latest version."""
        return self.latest_version(uuid)

    def version_at_time(self, uuid: Any, wall_ns: Any) -> int:
        """The newest version committed at or before wall-clock time ``wall_ns``."""
        st = self._stream(uuid)
        wall = as_int(wall_ns, "wall_ns")
        with self._guard(st):
            found = self._store.version_at(st.sid, wall)
        if found is None:
            raise VersionNotAvailable(f"the stream did not exist at wall time {wall} ns")
        return found

    def _resolve(self, st: _Stream, version: Any) -> tuple[int, int]:
        """``(version, root)`` for a requested version (0 = latest)."""
        ver = as_int(version, "version")
        latest, root = st.state
        if ver == 0 or ver == latest:
            return latest, root
        if ver < FIRST_VERSION or ver > latest:
            raise VersionNotAvailable(f"version {ver} is not available (latest is {latest})")
        with self._guard(st):
            found = self._store.superblock(st.sid, ver)
        if found is None:
            raise VersionNotAvailable(f"version {ver} is not available (latest is {latest})")
        return ver, found[0]

    @contextmanager
    def _guard(self, st: _Stream) -> Iterator[None]:
        """Turn a block that vanished under an obliterate into StreamNotFound."""
        try:
            yield
        except MissingBlock as exc:
            if st.dead or self._store.load_stream(st.uuid) is None:
                raise StreamNotFound() from None
            raise ServerError(f"block {exc.args[0]} is missing", StatusCode.INVARIANT_FAILURE) from None

    # ------------------------------------------------------------------- writes
    def _alloc(self, st: _Stream) -> Callable[[], int]:
        if st.next_addr is None:
            st.next_addr = self._store.max_addr(st.sid) + 1

        def alloc() -> int:
            addr = st.next_addr
            st.next_addr = addr + 1  # type: ignore[operator]
            return addr  # type: ignore[return-value]

        return alloc

    def _commit(self, st: _Stream, gen: int, root: int, writer: TreeWriter) -> None:
        if st.last_wall is None:
            st.last_wall = self._store.last_walltime(st.sid)
        wall = max(int(self._clock()), st.last_wall)
        try:
            self._store.commit(st.uuid, st.sid, gen, root, wall, writer.pending)
        except KeyError:
            raise StreamNotFound() from None
        st.last_wall = wall
        st.state = (gen, root)
        for addr, node in writer.new_nodes:
            self._reader.remember_node(addr, node)
        for addr, block in writer.new_points[-4:]:
            self._reader.remember_points(addr, block)

    def insert(
        self,
        uuid: Any,
        times: Any,
        values: Any,
        merge: MergePolicy | int = MergePolicy.NEVER,
        round_bits: int | None = None,
    ) -> int:
        """Insert points (unsorted is fine) as one new version; returns that version.

        An empty insert returns the current version unchanged. The whole batch is rejected when any time
        lies outside ``[MIN_TIME, TIME_LIMIT - 1)`` (InvalidTimeRange) or any value is NaN/Inf (BadValue).
        """
        st = self._stream(uuid)
        try:
            policy = MergePolicy(merge)
        except ValueError:
            raise WrongArgs(f"unknown merge policy {merge!r}") from None
        t, v = as_points(times, values)
        if round_bits is not None:
            t = round_times(t, round_bits)
        check_insert(t, v)
        if t.size == 0:
            return st.state[0]
        t, v = prepare_batch(t, v, policy)
        with st.lock:
            if st.dead:
                raise StreamNotFound()
            gen = st.state[0] + 1
            writer = TreeWriter(self._reader, self._alloc(st), gen)
            with self._guard(st):
                root = writer.insert(st.state[1], t, v, policy)
            self._commit(st, gen, root, writer)
        return gen

    def delete(self, uuid: Any, start: Any, end: Any) -> int:
        """Remove points with ``start <= t < end``; always makes a new version, which it returns."""
        st = self._stream(uuid)
        lo, hi = check_range(start, end)
        with st.lock:
            if st.dead:
                raise StreamNotFound()
            gen = st.state[0] + 1
            writer = TreeWriter(self._reader, self._alloc(st), gen)
            with self._guard(st):
                root = writer.delete(st.state[1], lo, hi)
            self._commit(st, gen, root, writer)
        return gen

    # -------------------------------------------------------------------- reads
    def raw_values(
        self, uuid: Any, start: Any, end: Any, version: Any = 0
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """Every point with ``start <= t < end`` at a version: ``(version, times, values)``."""
        st = self._stream(uuid)
        lo, hi = check_range(start, end)
        ver, root = self._resolve(st, version)
        with self._guard(st):
            t, v = query.raw_values(self._reader, root, lo, hi)
        return ver, t, v

    def iter_raw_values(
        self, uuid: Any, start: Any, end: Any, version: Any = 0, chunk: int = DEFAULT_CHUNK
    ) -> tuple[int, RawChunks[tuple[np.ndarray, np.ndarray]]]:
        """Like :meth:`raw_values` but yields chunks of exactly ``chunk`` points (the last fewer; none
        for no points) as fresh ``(times, values)`` arrays.

        Every argument is checked, and the leaves to read are found, before this returns, so errors
        never surface mid-iteration (except StreamNotFound if the stream is obliterated while it is
        being read). The result tells whether every block it will read is already decoded in memory.
        """
        return self._run(self._plan_raw_read(uuid, start, end, version, chunk), query.iter_raw_values)

    def iter_raw_pieces(
        self, uuid: Any, start: Any, end: Any, version: Any = 0, chunk: int = DEFAULT_CHUNK
    ) -> tuple[int, RawChunks[query.Pieces]]:
        """Like :meth:`iter_raw_values`, but each chunk is ``(time views, value views, points)``: views
        of the decoded blocks, in order, copied nowhere (for a sender that can write them out as
        they are). Views of cached blocks are read-only.
        """
        return self._run(self._plan_raw_read(uuid, start, end, version, chunk), query.iter_raw_pieces)

    def iter_raw_values_in_memory(
        self, uuid: Any, start: Any, end: Any, version: Any = 0, chunk: int = DEFAULT_CHUNK
    ) -> tuple[int, RawChunks[tuple[np.ndarray, np.ndarray]]] | None:
        """:meth:`iter_raw_values`, if the whole read can be served from memory without waiting
        for anything; else None (call :meth:`iter_raw_values` then, from a worker thread).

        Served from memory means: the stream is loaded, the latest version is asked for, and every
        internal node and leaf block the read needs is in the cache. Then nothing here reads the
        database or waits for a lock held across I/O, so an event loop may call it directly.
        Arguments are checked as by :meth:`iter_raw_values`.
        """
        plan = self._plan_in_memory_read(uuid, start, end, version, chunk)
        return None if plan is None else self._run(plan, query.iter_raw_values)

    def iter_raw_pieces_in_memory(
        self, uuid: Any, start: Any, end: Any, version: Any = 0, chunk: int = DEFAULT_CHUNK
    ) -> tuple[int, RawChunks[query.Pieces]] | None:
        """:meth:`iter_raw_pieces`, if served from memory (see :meth:`iter_raw_values_in_memory`)."""
        plan = self._plan_in_memory_read(uuid, start, end, version, chunk)
        return None if plan is None else self._run(plan, query.iter_raw_pieces)

    def _plan_raw_read(self, uuid: Any, start: Any, end: Any, version: Any, chunk: Any) -> _RawPlan:
        """Check a chunked raw read's arguments and find its leaves (reading the store if need be)."""
        st = self._stream(uuid)
        lo, hi, size = _raw_args(start, end, chunk)
        ver, root = self._resolve(st, version)
        with self._guard(st):
            refs = query.leaves_with_counts(self._reader, root, lo, hi)
        return _RawPlan(st, lo, hi, size, ver, refs, self._reader.all_cached(refs[0]))

    def _plan_in_memory_read(
        self, uuid: Any, start: Any, end: Any, version: Any, chunk: Any
    ) -> _RawPlan | None:
        """Like :meth:`_plan_raw_read` from memory alone; None when anything would need the store."""
        lo, hi, size = _raw_args(start, end, chunk)
        ver = as_int(version, "version")
        st = self._streams.get(as_uuid(uuid))
        if st is None or st.dead:
            return None  # not loaded yet (or going away): the full path loads it or says why
        latest, root = st.state
        if ver not in (0, latest):
            return None
        refs = query.cached_leaves_with_counts(self._reader, root, lo, hi)
        if refs is None or not self._reader.all_cached(refs[0]):
            return None
        return _RawPlan(st, lo, hi, size, latest, refs, True)

    def _run(
        self, plan: _RawPlan, produce: Callable[[BlockReader, query.LeafRefs, int, int, int], Iterator[T]]
    ) -> tuple[int, RawChunks[T]]:
        """The version and the chunks of a planned raw read, made by ``produce`` when iterated."""

        def chunks() -> Generator[T, None, None]:
            with self._guard(plan.stream):
                yield from produce(self._reader, plan.refs, plan.lo, plan.hi, plan.chunk)

        return plan.version, RawChunks(chunks(), plan.cached)

    def aligned_windows(
        self, uuid: Any, start: Any, end: Any, point_width: Any, version: Any = 0
    ) -> tuple[int, StatWindows]:
        """Statistics of windows ``[k·2^pw, (k+1)·2^pw)`` between start and end rounded down to 2^pw.

        The rounded range is clamped to the time axis; an empty range gives no windows, and windows
        without points are omitted.
        """
        st = self._stream(uuid)
        pw = check_point_width(point_width)
        mask = (1 << pw) - 1
        lo = max(as_int(start, "start") & ~mask, MIN_TIME)
        hi = min(as_int(end, "end") & ~mask, TIME_LIMIT)
        ver, root = self._resolve(st, version)
        if lo >= hi:
            return ver, StatWindows.empty()
        with self._guard(st):
            parts = query.collect_stats(
                self._reader,
                root,
                lo,
                hi,
                lambda t: t >> pw,
                lambda node_pw, bs: np.full(bs.shape, node_pw <= pw),
            )
        keys, cnt, mn, mean, mx, std = parts.combine()
        return ver, StatWindows(keys << pw, mn, mean, mx, cnt, std)

    def windows(
        self, uuid: Any, start: Any, end: Any, width: Any, version: Any = 0, depth: Any = 0
    ) -> tuple[int, StatWindows]:
        """Statistics of every window ``[start + k·width, start + (k+1)·width)``, empty ones included.

        ``end`` is truncated to a whole number of widths; if nothing is left there are no windows.
        ``depth`` is accepted and ignored: results are always exact.
        """
        st = self._stream(uuid)
        w = as_int(width, "width")
        if w <= 0 or w > 1 << 63:
            raise InvalidPointWidth(f"window width {w} is outside 1..2**63")
        check_point_width(depth, "depth")
        lo = as_int(start, "start")
        hi_req = as_int(end, "end")
        ver, root = self._resolve(st, version)
        n = (hi_req - lo) // w if hi_req > lo else 0
        if n <= 0:
            return ver, StatWindows.empty()
        hi = lo + n * w
        if lo < MIN_TIME or hi >= TIME_LIMIT:
            raise InvalidTimeRange(
                f"time range out of bounds: [{lo}, {hi}) must lie within [{MIN_TIME}, {TIME_LIMIT})"
            )
        if n > MAX_WINDOWS:
            raise InvalidPointWidth(f"{n} windows of width {w} are too many (at most {MAX_WINDOWS})")

        def key_of(t: np.ndarray) -> np.ndarray:
            return (t - lo) // w

        def slot_fits(node_pw: int, bs: np.ndarray) -> np.ndarray:
            return key_of(bs) == key_of(bs + ((1 << node_pw) - 1))

        with self._guard(st):
            parts = query.collect_stats(self._reader, root, lo, hi, key_of, slot_fits)
        keys, cnt, mn, mean, mx, std = parts.combine()
        out = StatWindows(
            lo + np.arange(n, dtype=np.int64) * w,
            np.zeros(n),
            np.zeros(n),
            np.zeros(n),
            np.zeros(n, dtype=np.uint64),
            np.zeros(n),
        )
        out.min[keys] = mn
        out.mean[keys] = mean
        out.max[keys] = mx
        out.count[keys] = cnt
        out.stddev[keys] = std
        return ver, out

    def nearest(self, uuid: Any, time: Any, backward: bool, version: Any = 0) -> tuple[int, int, float]:
        """``(version, t, v)`` of the first point at/after ``time`` or the last point before it."""
        st = self._stream(uuid)
        t = as_int(time, "time")
        if t < MIN_TIME or t >= TIME_LIMIT:
            raise InvalidTimeRange(f"time {t} is outside [{MIN_TIME}, {TIME_LIMIT})")
        ver, root = self._resolve(st, version)
        with self._guard(st):
            found = query.nearest(self._reader, root, t, bool(backward))
        if found is None:
            side = "before" if backward else "at or after"
            raise NoSuchPoint(f"no point {side} {t}")
        return ver, found[0], found[1]

    def changes(
        self, uuid: Any, from_version: Any, to_version: Any, resolution: Any
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """Time ranges whose data may differ between two versions: ``(to_version, starts, ends)``.

        ``from_version`` 0 means 1 (since creation), ``to_version`` 0 means latest. Ranges are sorted,
        disjoint, coalesced and aligned to ``2**resolution`` (clamped to the time axis).
        """
        st = self._stream(uuid)
        res = check_point_width(resolution, "resolution")
        frm = as_int(from_version, "from_version")
        if frm < 0:
            raise WrongArgs(f"from_version must not be negative, got {frm}")
        frm = frm or 1
        to_req = as_int(to_version, "to_version")
        if to_req != 0 and frm > to_req:
            raise InvalidVersions(f"from version {frm} is newer than to version {to_req}")
        ver, root = self._resolve(st, to_req)
        if frm > ver:
            raise InvalidVersions(f"from version {frm} is newer than to version {ver}")
        with self._guard(st):
            starts, ends = changed_ranges(self._reader, root, frm, res)
        return ver, starts, ends

    def count(
        self, uuid: Any, start: Any = MIN_TIME, end: Any = TIME_LIMIT - 1, version: Any = 0
    ) -> tuple[int, int]:
        """``(version, number of points with start <= t < end)``."""
        st = self._stream(uuid)
        lo, hi = check_range(start, end)
        ver, root = self._resolve(st, version)
        with self._guard(st):
            n = query.count(self._reader, root, lo, hi)
        return ver, n

    # -------------------------------------------------------------- maintenance
    def cache_info(self) -> dict[str, int]:
        """Decoded-block cache figures: ``bytes`` held, ``capacity``, ``entries``, ``hits``, ``misses``,
        and the policy's own (``small_bytes``, ``main_bytes``, ``ghosts``, ``promotions``,
        ``ghost_hits``; see :mod:`.block_cache`)."""
        return self._reader.cache.stats()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (before measuring its size)."""
        self._store.checkpoint()
