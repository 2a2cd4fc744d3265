"""The public storage engine: streams, versions, inserts, deletes and every query.

Concurrency: each stream has a lock that serialises its writers (build the new tree, commit, publish);
writers of different streams build in parallel and only share the SQLite write transaction. Readers never
lock: they pick a version's root (the latest one is published as one tuple after its commit) and read
immutable blocks, so a pinned version can never be seen half-written.
"""

from __future__ import annotations

import functools
import logging
import threading
import time as time_mod
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pingthings.server.engine import query, stored_reads
from pingthings.server.engine.blocks import DEFAULT_CACHE_BYTES, BlockReader, MissingBlock
from pingthings.server.engine.buffering import (
    MERGE_SPREAD,
    AgeMerger,
    Buffering,
    GroupInsert,
    StreamBuffer,
    merge_age,
)
from pingthings.server.engine.changes import changed_ranges
from pingthings.server.engine.compaction import CompactResult, reachable_blocks
from pingthings.server.engine.journal import Journal, JournalEntry, journal_path, legacy_journal_path
from pingthings.server.engine.late_admission import LateAdmission
from pingthings.server.engine.merge import MergePolicy, prepare_batch
from pingthings.server.engine.stats import Contributions, StatWindows
from pingthings.server.engine.store import FORMAT_VERSION, BlockStore
from pingthings.server.engine.tree import TreeWriter
from pingthings.server.engine.validate import (
    as_int,
    as_points,
    as_uuid,
    check_insert,
    check_point_width,
    check_range,
    check_sorted_times,
    check_values,
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
from pingthings.wire.point_checks import all_finite
from pingthings.wire.status import StatusCode

T = TypeVar("T")
log = logging.getLogger("pingthings.server.engine")

#: Default number of points per chunk of :meth:`Engine.iter_raw_values`.
DEFAULT_CHUNK = 50_000
#: Most windows one Windows query may produce (each costs ~48 bytes of memory).
MAX_WINDOWS = 1 << 26
#: File name used when the engine is given a directory.
DB_NAME = "engine.sqlite3"
#: Most windows an aligned-windows query answered in the caller's thread may produce.
IN_MEMORY_WINDOWS = 4096
#: What such a query may walk: internal nodes (cached) and raw points of partly covered leaves
#: (cached). With these bounds one query costs at most ~2 ms of CPU (bench/RESULTS.md).
IN_MEMORY_BUDGET = query.CachedBudget(nodes=256, points=1 << 17)
#: Most nodes and leaves a Nearest answered in the caller's thread may visit.
IN_MEMORY_NEAREST_BLOCKS = 64


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


def _aligned_args(start: Any, end: Any, point_width: Any) -> tuple[int, int, int]:
    """The checked ``(pw, lo, hi)`` of an aligned-windows query: the range rounded down to 2^pw
    and clamped to the time axis."""
    pw = check_point_width(point_width)
    mask = (1 << pw) - 1
    lo = max(as_int(start, "start") & ~mask, MIN_TIME)
    hi = min(as_int(end, "end") & ~mask, TIME_LIMIT)
    return pw, lo, hi


def _aligned_keys(
    pw: int,
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[int, np.ndarray], np.ndarray]]:
    """``(key_of, slot_fits)`` of windows of width 2^pw for :func:`query.collect_stats`."""
    return (lambda t: t >> pw), (lambda node_pw, bs: np.full(bs.shape, node_pw <= pw))


def _aligned_result(parts: Contributions, pw: int) -> StatWindows:
    keys, cnt, mn, mean, mx, std = parts.combine()
    return StatWindows(keys << pw, mn, mean, mx, cnt, std)


def _policy(merge: MergePolicy | int) -> MergePolicy:
    """``merge`` as a MergePolicy; WrongArgs for an unknown one."""
    if type(merge) is MergePolicy:
        return merge
    try:
        return MergePolicy(merge)
    except ValueError:
        raise WrongArgs(f"unknown merge policy {merge!r}") from None


def _input_points(times: Any, values: Any, round_bits: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Insert input as int64 times (rounded when asked) and float64 values, not yet checked."""
    t, v = as_points(times, values)
    if round_bits is not None:
        t = round_times(t, round_bits)
    return t, v


def _prepared_points(t: np.ndarray, v: np.ndarray, policy: MergePolicy) -> tuple[np.ndarray, np.ndarray]:
    """Input points checked (every point storable, as :func:`check_insert` does), sorted by time
    and with the batch's own duplicates resolved (:func:`prepare_batch`).

    The times are checked at the ends of the sorted batch (resolving duplicates drops no time that
    is not kept too): no min or max pass.
    """
    finite = all_finite(v)  # of every value: resolving duplicates may drop some
    t_sorted, v_sorted = prepare_batch(t, v, policy)
    check_sorted_times(t_sorted)
    if not finite:
        check_values(v)
    return t_sorted, v_sorted


def _windows_args(start: Any, end: Any, width: Any, depth: Any) -> tuple[int, int, int]:
    """The checked ``(width, start, end)`` of a Windows query."""
    w = as_int(width, "width")
    if w <= 0 or w > 1 << 63:
        raise InvalidPointWidth(f"window width {w} is outside 1..2**63")
    check_point_width(depth, "depth")
    return w, as_int(start, "start"), as_int(end, "end")


def windows_count(lo: int, hi_req: int, w: int) -> int:
    """How many whole windows of width ``w`` fit in ``[lo, hi_req)``; checks the range they cover."""
    n = (hi_req - lo) // w if hi_req > lo else 0
    if n <= 0:
        return 0
    hi = lo + n * w
    if lo < MIN_TIME or hi >= TIME_LIMIT:
        raise InvalidTimeRange(
            f"time range out of bounds: [{lo}, {hi}) must lie within [{MIN_TIME}, {TIME_LIMIT})"
        )
    if n > MAX_WINDOWS:
        raise InvalidPointWidth(f"{n} windows of width {w} are too many (at most {MAX_WINDOWS})")
    return n


def _windows_keys(
    lo: int, w: int
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[int, np.ndarray], np.ndarray]]:
    """``(key_of, slot_fits)`` of windows ``[lo + k·w, lo + (k+1)·w)`` for :func:`query.collect_stats`."""

    def key_of(t: np.ndarray) -> np.ndarray:
        return (t - lo) // w

    def slot_fits(node_pw: int, bs: np.ndarray) -> np.ndarray:
        return key_of(bs) == key_of(bs + ((1 << node_pw) - 1))

    return key_of, slot_fits


def _windows_result(parts: Contributions, lo: int, w: int, n: int) -> StatWindows:
    """All ``n`` windows, the empty ones with zero statistics."""
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
    return out


def _nearest_time(time: Any) -> int:
    """The checked time of a Nearest query."""
    t = as_int(time, "time")
    if t < MIN_TIME or t >= TIME_LIMIT:
        raise InvalidTimeRange(f"time {t} is outside [{MIN_TIME}, {TIME_LIMIT})")
    return t


def _nearest_result(
    ver: int, found: tuple[int, float] | None, t: int, backward: bool
) -> tuple[int, int, float]:
    if found is None:
        side = "before" if backward else "at or after"
        raise NoSuchPoint(f"no point {side} {t}")
    return ver, found[0], found[1]


class _Stream:
    """In-memory state of one live stream."""

    __slots__ = ("buffer", "dead", "last_wall", "lock", "next_addr", "sid", "state", "uuid")

    def __init__(self, uuid: bytes, sid: int, latest: int, root: int) -> None:
        self.uuid = uuid
        self.sid = sid
        self.state = (latest, root)  # published atomically after each commit
        self.lock = threading.Lock()
        self.next_addr: int | None = None
        self.last_wall: int | None = None
        self.dead = False
        self.buffer: StreamBuffer | None = None  # buffered inserts (changed under ``lock``)


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
    buffering
        None (the default): every insert commits its own version. A :class:`Buffering`: small inserts
        are journaled and merged into the tree in batches (see :mod:`.buffering` for the versions
        they return). Opening a database replays what its journal holds either way.
    """

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], int] = time_mod.time_ns,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        buffering: Buffering | None = None,
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
        self._late = LateAdmission(self._reader, max(1, cache_bytes // 4))
        self._streams: dict[bytes, _Stream] = {}
        self._streams_lock = threading.Lock()
        self.buffering = buffering
        self._buffered: dict[bytes, _Stream] = {}  # streams with a buffer, oldest first
        self._buffered_bytes = 0
        self._buffered_lock = threading.Lock()
        try:
            self._journal = Journal(journal_path(p), legacy=legacy_journal_path(p))
            self._replay_journal()
        except BaseException:
            self._store.close()
            raise
        self._merger: AgeMerger | None = None
        if buffering is not None:
            self._merger = AgeMerger(buffering.max_age, self._merge_older_than)
            self._merger.start()

    def close(self) -> None:
        """Merge every buffer, then close the database; the engine cannot be used afterwards."""
        self._late.close()
        if self._merger is not None:
            self._merger.stop()
        try:
            for st in list(self._buffered.values()):
                with st.lock:
                    self._merge_locked(st)
        finally:
            self._journal.close()
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
            self._drop_buffer(st)
            self._journal.remove_stream(st.sid)

    # ----------------------------------------------------------------- versions
    def latest_version(self, uuid: Any) -> int:
        """The stream's newest version. Buffered inserts are merged first, so the version returned
        is a snapshot that later inserts never change (a caller may pin it)."""
        st = self._stream(uuid)
        if st.buffer is None:
            return st.state[0]
        return self.flush(uuid)

    def peek_version(self, uuid: Any) -> int:
        """The stream's newest version without merging anything: the pending version while inserts
        are buffered (later inserts may still join it), else the latest committed one."""
        st = self._stream(uuid)
        buffer = st.buffer
        return st.state[0] if buffer is None else buffer.version

    def flush(self, uuid: Any) -> int:
        """Merge the stream's buffered inserts (if any) into the tree; returns the latest version."""
        st = self._stream(uuid)
        with st.lock:
            if st.dead:
                raise StreamNotFound()
            self._merge_locked(st)
            return st.state[0]

    def buffered_points(self) -> int:
        """Points buffered in all streams, not merged into their trees yet."""
        return self._buffered_bytes // 16

    def journal_bytes(self) -> int:
        """Bytes the ingest journal file occupies on disk now."""
        return self._journal.disk_bytes()

    def version_at_time(self, uuid: Any, wall_ns: Any) -> int:
        """The newest version committed at or before wall-clock time ``wall_ns``."""
        st = self._stream(uuid)
        wall = as_int(wall_ns, "wall_ns")
        buffer = st.buffer
        if buffer is not None and wall >= buffer.wall:
            self.flush(uuid)  # the pending version is current from its first insert on
        with self._guard(st):
            found = self._store.version_at(st.sid, wall)
        if found is None:
            self._raise_if_dropped(st, None)
            raise VersionNotAvailable(f"the stream did not exist at wall time {wall} ns")
        return found

    def _resolve(self, st: _Stream, version: Any) -> tuple[int, int]:
        """``(version, root)`` for a requested version (0 = latest), merging the buffer first when
        the version asked for is the pending one or the latest."""
        ver = as_int(version, "version")
        buffer = st.buffer
        if buffer is not None and (ver == 0 or ver >= buffer.version):
            with st.lock:
                if st.dead:
                    raise StreamNotFound()
                self._merge_locked(st)
        latest, root = st.state
        if ver == 0 or ver == latest:
            return latest, root
        if ver < FIRST_VERSION or ver > latest:
            raise VersionNotAvailable(f"version {ver} is not available (latest is {latest})")
        with self._guard(st):
            found = self._store.superblock(st.sid, ver)
        if found is None:
            self._raise_if_dropped(st, ver)
            raise VersionNotAvailable(f"version {ver} is not available (latest is {latest})")
        return ver, found[0]

    def _raise_if_dropped(self, st: _Stream, ver: int | None) -> None:
        """VersionNotAvailable naming the compaction when ``ver`` (None: any version before the
        oldest one kept) was dropped."""
        dropped = self._store.dropped_below(st.sid)
        if dropped is None or (ver is not None and ver >= dropped[0]):
            return
        below, cutoff = dropped
        what = f"version {ver} was" if ver is not None else f"versions older than {below} were"
        raise VersionNotAvailable(
            f"{what} dropped by compaction (pingthings compact --before {cutoff}); "
            f"the oldest version kept is {below}"
        )

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

    def _commit(self, st: _Stream, gen: int, root: int, writer: TreeWriter, wall: int | None = None) -> None:
        if st.last_wall is None:
            st.last_wall = self._store.last_walltime(st.sid)
        wall = max(int(self._clock()) if wall is None else wall, st.last_wall)
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

        With buffering on, a small insert is journaled and buffered instead, and the version it
        returns is the pending one its points will be merged into (see :mod:`.buffering`).
        An empty insert returns the current version unchanged. The whole batch is rejected when any time
        lies outside ``[MIN_TIME, TIME_LIMIT - 1)`` (InvalidTimeRange) or any value is NaN/Inf (BadValue).
        """
        st = self._stream(uuid)
        policy = _policy(merge)
        t, v = _prepared_points(*_input_points(times, values, round_bits), policy)
        if t.size == 0:
            return self.peek_version(uuid)
        with st.lock:
            if st.dead:
                raise StreamNotFound()
            version = self._buffer_locked(st, t, v, policy)
            if version is None:
                self._merge_locked(st)
                version = self._commit_batch(st, t, v, policy)
        self._trim_buffers()
        return version

    def insert_group(
        self, inserts: Sequence[GroupInsert], wait: bool = True
    ) -> list[int | ServerError | None]:
        """Journal and buffer several small inserts with one journal commit (a group commit).

        Concurrent inserters share the commit's cost: every insert waiting at one moment is
        handed to one call. Each result is, in order:

        * the pending version, once the insert is durable in the journal and in its stream's
          buffer (it may be acknowledged now);
        * a :class:`ServerError` for that insert alone (bad arguments, unknown stream, disk full);
        * None: not done here, nothing written; call :meth:`insert` for it, in order. That is the
          case with buffering off, for an empty insert, for one too big to buffer, for one that
          needs its stream's buffer merged first (other policy, buffer full), and for every later
          insert of a stream that had a None, so that each stream's inserts keep their order.

        With ``wait=False`` (a caller in an event loop) nothing waits and nothing is merged: an
        insert is None also when its stream is not loaded or is busy in another thread, when the
        buffers are at ``max_bytes``, and every insert is None when the journal is busy.
        """
        if len(inserts) == 1:
            one = inserts[0]
            return [self.insert_one(one.uuid, one.times, one.values, one.merge, one.round_bits, wait)]
        results: list[int | ServerError | None] = [None] * len(inserts)
        cfg = self.buffering
        if cfg is None:
            return results
        checked: list[tuple[int, _Stream, np.ndarray, np.ndarray, MergePolicy]] = []
        passed: set[int] = set()  # streams with a None: their later inserts are None too
        room = cfg.max_bytes - self._buffered_bytes
        for i, item in enumerate(inserts):
            try:
                st = self._stream(item.uuid) if wait else self._streams.get(as_uuid(item.uuid))
                policy = _policy(item.merge)
                t, v = _input_points(item.times, item.values, item.round_bits)
                if 0 < t.size < cfg.max_points:
                    t, v = _prepared_points(t, v, policy)
                else:  # left over, sorted by insert: checked only
                    check_insert(t, v)
            except ServerError as exc:
                results[i] = exc
                continue
            if st is None:  # not loaded (wait=False): every insert of the stream is None
                continue
            if not wait:
                room -= 16 * int(t.size)
            if id(st) in passed or not 0 < t.size < cfg.max_points or room < 0:
                passed.add(id(st))
                continue
            checked.append((i, st, t, v, policy))
        locked: list[_Stream] = []
        # A fixed order (by stream number): two callers can never deadlock on each other's locks.
        for st in sorted({id(c[1]): c[1] for c in checked}.values(), key=lambda st: st.sid):
            if st.lock.acquire(blocking=wait):
                locked.append(st)
        try:
            held = {id(st) for st in locked}
            self._journal_group([c for c in checked if id(c[1]) in held], cfg, results, wait)
        finally:
            for st in locked:
                st.lock.release()
        if wait:
            self._trim_buffers()
        return results

    def insert_one(
        self,
        uuid: Any,
        times: Any,
        values: Any,
        merge: MergePolicy | int = MergePolicy.NEVER,
        round_bits: int | None = None,
        wait: bool = True,
    ) -> int | ServerError | None:
        """:meth:`insert_group` of one insert: its result alone, without a group's bookkeeping."""
        cfg = self.buffering
        if cfg is None:
            return None
        try:
            st = self._stream(uuid) if wait else self._streams.get(as_uuid(uuid))
            policy = _policy(merge)
            t, v = _input_points(times, values, round_bits)
            small = 0 < t.size < cfg.max_points
            if small:
                t, v = _prepared_points(t, v, policy)
            else:  # left over, sorted by insert: checked only
                check_insert(t, v)
        except ServerError as exc:
            return exc
        if st is None or not small:
            return None
        if cfg.max_bytes - self._buffered_bytes - (0 if wait else 16 * int(t.size)) < 0:
            return None
        if not st.lock.acquire(blocking=wait):
            return None
        try:
            result = self._journal_one(st, t, v, policy, cfg, wait)
        finally:
            st.lock.release()
        if wait:
            self._trim_buffers()
        return result

    def _journal_one(
        self, st: _Stream, t: np.ndarray, v: np.ndarray, policy: MergePolicy, cfg: Buffering, wait: bool
    ) -> int | ServerError | None:
        """:meth:`_journal_group` of one insert (``st.lock`` held)."""
        if st.dead:
            return StreamNotFound()
        buffer = st.buffer
        if buffer is not None and (buffer.policy != policy or buffer.points + t.size > cfg.max_points):
            return None
        if buffer is None:
            buffer = StreamBuffer(st.state[0] + 1, policy, int(self._clock()))
        try:
            if not self._journal.append_many([JournalEntry(st.sid, buffer.version, int(policy), t, v)], wait):
                return None
        except ServerError as exc:  # DiskFull: nothing was written
            return exc
        self._into_buffer(st, buffer, t, v)
        return buffer.version

    def _into_buffer(self, st: _Stream, buffer: StreamBuffer, t: np.ndarray, v: np.ndarray) -> None:
        """Add journaled points to their stream's buffer (``st.lock`` held)."""
        buffer.add(t, v)
        with self._buffered_lock:
            if st.buffer is not buffer:
                st.buffer = buffer
                self._buffered[st.uuid] = st
            self._buffered_bytes += 16 * int(t.size)

    def _journal_group(
        self,
        checked: list[tuple[int, _Stream, np.ndarray, np.ndarray, MergePolicy]],
        cfg: Buffering,
        results: list[int | ServerError | None],
        wait: bool,
    ) -> None:
        """The locked part of :meth:`insert_group`: plan each stream's buffer, commit the rows,
        then add the points to the buffers (every stream's ``lock`` held)."""
        planned: dict[int, tuple[StreamBuffer, int]] = {}  # id(stream) -> (its buffer, points in it)
        passed: set[int] = set()  # streams with a None: their later inserts are None too
        rows: list[JournalEntry] = []
        placed: list[tuple[int, _Stream, StreamBuffer, np.ndarray, np.ndarray]] = []
        for i, st, t, v, policy in checked:
            key = id(st)
            if st.dead:
                results[i] = StreamNotFound()
                continue
            if key in passed:
                continue
            buffer, points = planned.get(key) or (st.buffer, 0 if st.buffer is None else st.buffer.points)
            if buffer is not None and (buffer.policy != policy or points + t.size > cfg.max_points):
                passed.add(key)
                continue
            if buffer is None:
                buffer = StreamBuffer(st.state[0] + 1, policy, int(self._clock()))
            planned[key] = (buffer, points + int(t.size))
            rows.append(JournalEntry(st.sid, buffer.version, int(policy), t, v))
            placed.append((i, st, buffer, t, v))
        try:
            if not self._journal.append_many(rows, wait):
                return  # the journal is busy: every insert stays None
        except ServerError as exc:  # DiskFull: none of the rows was written
            for i, *_ in placed:
                results[i] = exc
            return
        for i, st, buffer, t, v in placed:
            self._into_buffer(st, buffer, t, v)
            results[i] = buffer.version

    def _commit_batch(
        self, st: _Stream, t: np.ndarray, v: np.ndarray, policy: MergePolicy, wall: int | None = None
    ) -> int:
        """Commit prepared points as the next version (``st.lock`` held, buffer empty)."""
        gen = st.state[0] + 1
        writer = TreeWriter(self._reader, self._alloc(st), gen)
        with self._guard(st):
            root = writer.insert(st.state[1], t, v, policy)
        self._commit(st, gen, root, writer, wall)
        return gen

    # ----------------------------------------------------------------- buffering
    def _buffer_locked(self, st: _Stream, t: np.ndarray, v: np.ndarray, policy: MergePolicy) -> int | None:
        """Journal and buffer prepared points (``st.lock`` held); their pending version, or None to
        commit them now."""
        cfg = self.buffering
        if cfg is None or t.size >= cfg.max_points:
            return None
        buffer = st.buffer
        if buffer is not None and (buffer.policy != policy or buffer.points + t.size > cfg.max_points):
            self._merge_locked(st)
            buffer = None
        fresh = buffer is None
        if buffer is None:
            buffer = StreamBuffer(st.state[0] + 1, policy, int(self._clock()))
        self._journal.append(st.sid, buffer.version, int(policy), t, v)
        buffer.add(t, v)
        with self._buffered_lock:
            if fresh:
                st.buffer = buffer
                self._buffered[st.uuid] = st
            self._buffered_bytes += 16 * int(t.size)
        return buffer.version

    def _merge_locked(self, st: _Stream) -> None:
        """Commit the stream's buffer as its pending version and forget it (``st.lock`` held)."""
        buffer = st.buffer
        if buffer is None:
            return
        t, v = prepare_batch(*buffer.joined(), buffer.policy)
        if buffer.version != st.state[0] + 1:
            msg = f"buffered version {buffer.version} does not follow {st.state[0]}"
            raise ServerError(msg, StatusCode.INVARIANT_FAILURE)
        self._commit_batch(st, t, v, buffer.policy, buffer.wall)
        self._drop_buffer(st)
        self._journal.remove(st.sid, buffer.version)

    def _drop_buffer(self, st: _Stream) -> None:
        """Forget the stream's buffer (merged, or the stream is gone)."""
        with self._buffered_lock:
            buffer, st.buffer = st.buffer, None
            if buffer is not None:
                self._buffered.pop(st.uuid, None)
                self._buffered_bytes -= buffer.nbytes

    def _trim_buffers(self) -> None:
        """Merge the oldest buffers while all of them hold more than ``max_bytes``."""
        cfg = self.buffering
        while cfg is not None and self._buffered_bytes > cfg.max_bytes:
            with self._buffered_lock:
                oldest = next(iter(self._buffered.values()), None)
            if oldest is None:
                return
            with oldest.lock:
                if not oldest.dead:
                    self._merge_locked(oldest)

    def _merge_older_than(self, age: float) -> None:
        """Merge every buffer that has reached its merge age (:func:`.buffering.merge_age`: within
        the last quarter of ``age``, fixed per stream), and keep the journal file bounded while no
        merge happens (background thread)."""
        try:
            self._journal.checkpoint_if_big()
        except Exception:
            log.exception("checkpointing the ingest journal failed")
        now = time_mod.monotonic()
        youngest = now - age * (1.0 - MERGE_SPREAD)  # a buffer born later is not due yet
        with self._buffered_lock:
            due = [
                (st, now - merge_age(st.uuid, age))
                for st in self._buffered.values()
                if st.buffer is not None and st.buffer.born <= youngest
            ]
        for st, limit in due:
            try:
                with st.lock:
                    buffer = st.buffer
                    if not st.dead and buffer is not None and buffer.born <= limit:
                        self._merge_locked(st)
            except Exception:  # keep merging the others; the buffer stays and is retried
                log.exception("merging the buffered inserts of a stream failed")

    def _replay_journal(self) -> None:
        """Merge what the journal holds into the trees (after a crash; empty after a clean close)."""
        pending: dict[int, list[JournalEntry]] = {}
        for entry in self._journal.entries():
            pending.setdefault(entry.sid, []).append(entry)
        for sid, entries in pending.items():
            uuid = self._store.stream_uuid(sid)
            if uuid is None:
                self._journal.remove_stream(sid)
                continue
            st = self._stream(uuid)
            with st.lock:
                live = [e for e in entries if e.version > st.state[0]]
                for e in live:
                    if st.buffer is not None and st.buffer.version != e.version:
                        self._merge_locked(st)
                    if st.buffer is None:
                        st.buffer = StreamBuffer(e.version, MergePolicy(e.policy), int(self._clock()))
                        self._buffered[st.uuid] = st
                    st.buffer.add(e.times, e.values)
                    self._buffered_bytes += 16 * int(e.times.size)
                self._merge_locked(st)
                self._journal.remove(sid, st.state[0])

    def delete(self, uuid: Any, start: Any, end: Any) -> int:
        """Remove points with ``start <= t < end``; always makes a new version, which it returns."""
        st = self._stream(uuid)
        lo, hi = check_range(start, end)
        with st.lock:
            if st.dead:
                raise StreamNotFound()
            self._merge_locked(st)
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
        self,
        uuid: Any,
        start: Any,
        end: Any,
        version: Any = 0,
        chunk: int = DEFAULT_CHUNK,
        decode_ahead: bool = True,
    ) -> tuple[int, RawChunks[tuple[np.ndarray, np.ndarray]]]:
        """Like :meth:`raw_values` but yields chunks of exactly ``chunk`` points (the last fewer; none
        for no points) as fresh ``(times, values)`` arrays.

        Every argument is checked, and the leaves to read are found, before this returns, so errors
        never surface mid-iteration (except StreamNotFound if the stream is obliterated while it is
        being read). The result tells whether every block it will read is already decoded in memory.

        ``decode_ahead``: uncached blocks are decoded in the decode pool while the caller works on
        the chunk before (pco blocks decode with the GIL released, so that is a second core). A
        caller whose own work already overlaps the read, as the server's senders do (a worker thread
        reads while the event loop sends), passes False: there the pool only adds thread hand-offs.
        """
        produce = functools.partial(query.iter_raw_values, ahead=decode_ahead)
        return self._run(self._plan_raw_read(uuid, start, end, version, chunk), produce)

    def iter_raw_pieces(
        self,
        uuid: Any,
        start: Any,
        end: Any,
        version: Any = 0,
        chunk: int = DEFAULT_CHUNK,
        decode_ahead: bool = True,
    ) -> tuple[int, RawChunks[query.Pieces]]:
        """Like :meth:`iter_raw_values`, but each chunk is ``(time views, value views, points)``: views
        of the decoded blocks, in order, copied nowhere (for a sender that can write them out as
        they are). Views of cached blocks are read-only.
        """
        produce = functools.partial(query.iter_raw_pieces, ahead=decode_ahead)
        return self._run(self._plan_raw_read(uuid, start, end, version, chunk), produce)

    def iter_raw_stored(
        self,
        uuid: Any,
        start: Any,
        end: Any,
        version: Any = 0,
        max_bytes: int = 16 * DEFAULT_CHUNK,
        send_blocks: bool = True,
        server_share: float | None = None,
    ) -> tuple[int, RawChunks[list[stored_reads.Piece]]]:
        """Like :meth:`iter_raw_pieces`, but as the tree stores the points: each step is one
        message's pieces (at most ``max_bytes`` bytes), uncached blocks as their stored bytes unless
        ``send_blocks`` is false, except a share of them (``server_share``, None: the default
        :data:`.stored_reads.SERVER_SHARE`) decoded here and cached at once (see
        :mod:`.stored_reads`). Checked and planned as :meth:`iter_raw_values` (buffered points are
        merged first, as for every read).
        """
        plan = self._plan_raw_read(uuid, start, end, version, max(1, max_bytes // 16))

        def produce(reader: BlockReader, refs: query.LeafRefs, lo: int, hi: int, _: int) -> Iterator[Any]:
            late = self._late if reader.cache.capacity else None
            return stored_reads.iter_stored_messages(
                reader, refs, lo, hi, max_bytes, send_blocks, late, server_share
            )

        return self._run(plan, produce)

    def admission_idle(self, timeout: float | None = None) -> bool:
        """Wait until the blocks RawBlocks reads sent encoded are decoded into the cache (see
        :mod:`.late_admission`); whether that happened within ``timeout`` seconds."""
        return self._late.idle(timeout)

    @property
    def block_format(self) -> int:
        """The format of the point blocks this engine stores (see :mod:`pingthings.wire.blocks`)."""
        return FORMAT_VERSION

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
        if st is None or st.dead or st.buffer is not None:
            return None  # not loaded yet, going away, or buffered points to merge: the full path does it
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
            marked = self._late.serving() if plan.cached else self._late.cold_reading()
            with self._guard(plan.stream), marked:
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
        pw, lo, hi = _aligned_args(start, end, point_width)
        ver, root = self._resolve(st, version)
        if lo >= hi:
            return ver, StatWindows.empty()
        with self._guard(st):
            parts = query.collect_stats(self._reader, root, lo, hi, *_aligned_keys(pw))
        return ver, _aligned_result(parts, pw)

    def aligned_windows_in_memory(
        self, uuid: Any, start: Any, end: Any, point_width: Any, version: Any = 0
    ) -> tuple[int, StatWindows] | None:
        """:meth:`aligned_windows`, if it can be answered from memory at a small, bounded cost;
        else None (call :meth:`aligned_windows` then, from a worker thread).

        Answered from memory means: the stream is loaded and has no buffered inserts (those must be
        merged into the tree first, which writes), the latest version is asked for, and every node
        and leaf the walk needs is in the block cache. Bounded means at most
        :data:`IN_MEMORY_WINDOWS` windows, :data:`IN_MEMORY_BUDGET` ``.nodes`` nodes visited and
        ``.points`` raw points scanned; nothing here reads the database or waits for a lock, so an
        event loop may call it directly. Arguments are checked as by :meth:`aligned_windows`.
        """
        st = self._streams.get(as_uuid(uuid))
        if st is None or st.dead or st.buffer is not None:
            return None  # not loaded, going away, or buffered points to merge: the full path does it
        pw, lo, hi = _aligned_args(start, end, point_width)
        ver = as_int(version, "version")
        latest, root = st.state
        if ver not in (0, latest) or ((hi - lo) >> pw) > IN_MEMORY_WINDOWS:
            return None
        if lo >= hi:
            return latest, StatWindows.empty()
        with self._guard(st):  # a block evicted and obliterated under the walk reads as a missing stream
            parts = query.cached_stats(self._reader, root, lo, hi, *_aligned_keys(pw), IN_MEMORY_BUDGET)
        return None if parts is None else (latest, _aligned_result(parts, pw))

    def windows(
        self, uuid: Any, start: Any, end: Any, width: Any, version: Any = 0, depth: Any = 0
    ) -> tuple[int, StatWindows]:
        """Statistics of every window ``[start + k·width, start + (k+1)·width)``, empty ones included.

        ``end`` is truncated to a whole number of widths; if nothing is left there are no windows.
        ``depth`` is accepted and ignored: results are always exact.
        """
        st = self._stream(uuid)
        w, lo, hi_req = _windows_args(start, end, width, depth)
        ver, root = self._resolve(st, version)
        n = windows_count(lo, hi_req, w)
        if n <= 0:
            return ver, StatWindows.empty()
        with self._guard(st):
            parts = query.collect_stats(self._reader, root, lo, lo + n * w, *_windows_keys(lo, w))
        return ver, _windows_result(parts, lo, w, n)

    def windows_in_memory(
        self, uuid: Any, start: Any, end: Any, width: Any, version: Any = 0, depth: Any = 0
    ) -> tuple[int, StatWindows] | None:
        """:meth:`windows`, if it can be answered from memory at a small, bounded cost; else None.

        The conditions and bounds are those of :meth:`aligned_windows_in_memory` (at most
        :data:`IN_MEMORY_WINDOWS` windows, empty ones included). Arguments are checked as by
        :meth:`windows`.
        """
        st = self._streams.get(as_uuid(uuid))
        if st is None or st.dead or st.buffer is not None:
            return None  # not loaded, going away, or buffered points to merge: the full path does it
        w, lo, hi_req = _windows_args(start, end, width, depth)
        ver = as_int(version, "version")
        latest, root = st.state
        if ver not in (0, latest):
            return None
        n = windows_count(lo, hi_req, w)
        if n <= 0:
            return latest, StatWindows.empty()
        if n > IN_MEMORY_WINDOWS:
            return None
        keys = _windows_keys(lo, w)
        with self._guard(st):
            parts = query.cached_stats(self._reader, root, lo, lo + n * w, *keys, IN_MEMORY_BUDGET)
        return None if parts is None else (latest, _windows_result(parts, lo, w, n))

    def nearest(self, uuid: Any, time: Any, backward: bool, version: Any = 0) -> tuple[int, int, float]:
        """``(version, t, v)`` of the first point at/after ``time`` or the last point before it."""
        st = self._stream(uuid)
        t = _nearest_time(time)
        ver, root = self._resolve(st, version)
        with self._guard(st):
            found = query.nearest(self._reader, root, t, bool(backward))
        return _nearest_result(ver, found, t, backward)

    def nearest_in_memory(
        self, uuid: Any, time: Any, backward: bool, version: Any = 0
    ) -> tuple[int, int, float] | None:
        """:meth:`nearest`, if it can be answered from cached blocks (loaded stream, no buffered
        inserts, latest version, at most :data:`IN_MEMORY_NEAREST_BLOCKS` nodes and leaves
        visited); else None. Raises as :meth:`nearest` does (NoSuchPoint included)."""
        st = self._streams.get(as_uuid(uuid))
        if st is None or st.dead or st.buffer is not None:
            return None  # not loaded, going away, or buffered points to merge: the full path does it
        t = _nearest_time(time)
        ver = as_int(version, "version")
        latest, root = st.state
        if ver not in (0, latest):
            return None
        try:
            with self._guard(st):
                found = query.cached_nearest(self._reader, root, t, bool(backward), IN_MEMORY_NEAREST_BLOCKS)
        except query.NotInMemory:
            return None
        return _nearest_result(latest, found, t, backward)

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
    def compact(self, before_wall_ns: int) -> list[CompactResult]:
        """Drop, in every stream, the versions older than the one current at ``before_wall_ns`` and
        free the blocks no kept version reaches.

        The version current at the cut-off time is kept, so every read at a time from then on is
        unchanged; reads of a dropped version raise VersionNotAvailable naming the compaction.
        Buffered inserts are merged first. The database file keeps its size until :meth:`vacuum`.
        """
        cutoff = as_int(before_wall_ns, "before_wall_ns")
        results = []
        for uuid in self._store.live_uuids():
            try:
                st = self._stream(uuid)
            except StreamNotFound:
                continue  # obliterated meanwhile
            with st.lock:
                if st.dead:
                    continue
                self._merge_locked(st)
                results.append(self._compact_locked(st, cutoff))
        return results

    def _compact_locked(self, st: _Stream, cutoff: int) -> CompactResult:
        """Compact one stream (``st.lock`` held)."""
        keep_from = self._store.version_at(st.sid, cutoff)
        versions = self._store.versions(st.sid)
        if keep_from is None or versions[0][0] >= keep_from:
            return CompactResult(st.uuid, keep_from or 0, 0, 0, 0)
        with self._guard(st):
            reached = reachable_blocks(self._store, [root for ver, root, _ in versions if ver >= keep_from])
        sizes = self._store.block_sizes(st.sid)
        freed = sorted(set(sizes) - reached)
        self._store.drop_versions(st.sid, keep_from, cutoff, freed)
        dropped = sum(1 for ver, _, _ in versions if ver < keep_from)
        return CompactResult(st.uuid, keep_from, dropped, len(freed), sum(sizes[a] for a in freed))

    def vacuum(self) -> None:
        """Give the space of freed blocks back to the file system (rewrites the database file)."""
        self._store.vacuum()

    def cache_info(self) -> dict[str, int]:
        """Decoded-block cache figures: ``bytes`` held, ``capacity``, ``entries``, ``hits``, ``misses``,
        and the policy's own (``small_bytes``, ``main_bytes``, ``ghosts``, ``promotions``,
        ``ghost_hits``; see :mod:`.block_cache`)."""
        return self._reader.cache.stats()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (before measuring its size)."""
        self._store.checkpoint()
