"""Decoded-block access with a byte-bounded, scan-resistant cache in front of the SQLite store.

Blocks are immutable (copy-on-write: a changed block is written under a new address), so a decoded copy
keyed by address is always coherent. Addresses are never reused: an address is ``(sid << 40) | seq``, the
stream number comes from a counter stored in the database and the sequence only grows while the process
runs, so an address freed by Obliterate can never name different data later. Obliterate still drops the
stream's entries (:meth:`BlockReader.forget_stream`) to give their memory back at once.

The cache (:mod:`.block_cache`, S3-FIFO) holds internal nodes and point blocks (leaves and leaf groups)
under one budget in bytes. Cached arrays are read-only: a block decoded in a batch is cached as a view of
the batch's freshly decoded arrays (no copy per block), and becomes a private copy only if it stays in the
cache long enough to be given a second round. Reads that copy points out hand out fresh arrays; the
zero-copy reads (:meth:`BlockReader.scan_runs`) hand out read-only views.

A chunked read that misses the cache decodes its batches in the caller's thread, one as each is needed
(the server's event loop sends the previous chunks meanwhile); a read into two arrays decodes its batches
in the decode pool (:mod:`.decode_pool`), on every core (see :meth:`BlockReader._pipelined`).

A leaf is named by a *leaf reference*: the address its parent slot holds and the slot's number. The block
at that address is either a plain leaf (all its points belong to the slot) or a leaf group holding the
small leaves of several slots of one node (see :mod:`.leaf_codec`); the slot number picks the leaf's part.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from pingthings.server.engine.block_cache import BlockCache
from pingthings.server.engine.cache_size import default_cache_bytes
from pingthings.server.engine.decode_pool import ahead, decode_workers
from pingthings.server.engine.node import Node, decode_node
from pingthings.server.engine.store import SEQ_BITS, BlockStore
from pingthings.wire.blocks.leaf_codec import LeafView, decode_views

Leaf = tuple[np.ndarray, np.ndarray]
T = TypeVar("T")

__all__ = ["DEFAULT_CACHE_BYTES", "BlockCache", "BlockReader", "MissingBlock", "PointBlock"]

#: Default budget of the decoded-block cache: a share of this machine's memory (see :mod:`.cache_size`).
DEFAULT_CACHE_BYTES = default_cache_bytes()
#: Bytes of one decoded point (int64 time, float64 value).
POINT_BYTES = 16
#: Bytes of a leaf group's slot bounds (65 int64).
GROUP_BOUNDS_BYTES = 65 * 8
#: Bytes charged per cache entry on top of its arrays (Python objects, dict slot).
ENTRY_OVERHEAD = 256
#: Bytes charged per leaf-group entry on top of its points (overhead and slot bounds).
GROUPED = ENTRY_OVERHEAD + GROUP_BOUNDS_BYTES
#: Bytes charged for one decoded internal node (eight 64-entry arrays plus their headers).
NODE_BYTES = 7 * 64 * 8 + 64 + 8 * 112 + ENTRY_OVERHEAD


class MissingBlock(Exception):
    """A block address that is not in the store (its stream was obliterated meanwhile)."""


class PointBlock:
    """A decoded leaf or leaf-group block: all its points and, for a group, the slot bounds."""

    __slots__ = ("bounds", "t", "v")

    def __init__(self, t: np.ndarray, v: np.ndarray, bounds: np.ndarray | None) -> None:
        self.t = t
        self.v = v
        self.bounds = bounds

    @property
    def size(self) -> int:
        """Number of points in the block."""
        return int(self.t.size)

    def nbytes(self) -> int:
        """Memory charged for this block in the cache."""
        extra = 0 if self.bounds is None else int(self.bounds.nbytes)
        return int(self.t.nbytes + self.v.nbytes) + extra + ENTRY_OVERHEAD

    def private(self) -> PointBlock:
        """A read-only copy that shares no memory with anything else (safe to cache)."""
        t = np.array(self.t, dtype=np.int64, copy=True)
        v = np.array(self.v, dtype=np.float64, copy=True)
        bounds = None if self.bounds is None else np.array(self.bounds, dtype=np.int64, copy=True)
        for a in (t, v) if bounds is None else (t, v, bounds):
            a.setflags(write=False)
        return PointBlock(t, v, bounds)

    def leaf(self, slot: int) -> Leaf:
        """The points of the leaf in slot ``slot``."""
        if self.bounds is None:
            return self.t, self.v
        a, b = int(self.bounds[slot]), int(self.bounds[slot + 1])
        return self.t[a:b], self.v[a:b]


def _own(value: object) -> object:
    """``value``, or a private copy of it if it is a point block viewing a larger decode batch."""
    if isinstance(value, PointBlock) and value.t.base is not None:
        return value.private()
    return value


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


#: Most points decoded in one batch (with at most ``batch`` blocks): the batch's temporary arrays then
#: stay in a core's L2 cache. Measured on a 10^7-point 120 Hz read (serial decode CPU): 295 ms with
#: batches of 16k points, 238 ms with 64k-256k, 265 ms with ~850k (128 grouped blocks).
BATCH_POINTS = 1 << 17


def _run_batches(runs: np.ndarray, counts: np.ndarray, batch: int) -> list[tuple[int, int]]:
    """``(first run, end run)`` of consecutive batches of at most ``batch`` runs of references and,
    unless one run alone is larger, at most :data:`BATCH_POINTS` points (``runs`` as from :func:`_runs`)."""
    n_runs = runs.size - 1
    if n_runs <= 0:
        return []
    ends = np.cumsum(counts)[runs[1:] - 1]  # points up to the end of each run
    out: list[tuple[int, int]] = []
    r = 0
    base = 0
    while r < n_runs:
        # the first run past the point budget (at least one run per batch), capped at ``batch`` runs
        cut = int(np.searchsorted(ends, base + BATCH_POINTS, side="right"))
        r_end = min(max(cut, r + 1), r + batch, n_runs)
        out.append((r, r_end))
        base = int(ends[r_end - 1])
        r = r_end
    return out


def _run_slices(
    addrs: np.ndarray,
    slots: np.ndarray,
    counts: np.ndarray,
    sizes: list[int],
    bounds: list[np.ndarray | None],
) -> list[tuple[int, int]] | None:
    """Where each run of references to one block finds its points in the blocks' concatenation
    (``sizes`` and slot ``bounds`` per block, one block per run): ``(start, end)`` per run, or None
    when some run's points are not one contiguous range of its block.

    A bulk-loaded stream's leaf groups also hold the old points of a leaf rewritten later (the last
    leaf of each insert, extended by the next one), so a read often wants most, not all, of a
    group's points: slicing costs a few list operations per block, where a gather index costs
    several passes over every point (measured: warm 2*10^6-point reads ran at 47 against 180 Mpt/s).
    """
    runs = _runs(addrs)
    first, last = runs[:-1], runs[1:] - 1
    wants = np.add.reduceat(counts, first).tolist() if first.size else []
    out: list[tuple[int, int]] = []
    base = 0
    for size, bnd, s0, s1, want in zip(
        sizes, bounds, slots[first].tolist(), slots[last].tolist(), wants, strict=True
    ):
        i, j = (0, size) if bnd is None else (int(bnd[s0]), int(bnd[s1 + 1]))
        if j - i != want:
            return None
        out.append((base + i, base + j))
        base += size
    return out


def _cut(
    t: np.ndarray, v: np.ndarray, cuts: list[tuple[int, int]], out: tuple[np.ndarray, np.ndarray] | None
) -> Leaf:
    """The ``cuts`` of ``t`` and ``v``, concatenated (into ``out`` when given)."""
    ts = [t[i:j] for i, j in cuts]
    vs = [v[i:j] for i, j in cuts]
    if out is None:
        return np.concatenate(ts), np.concatenate(vs)
    np.concatenate(ts, out=out[0])
    np.concatenate(vs, out=out[1])
    return out


def _runs(addrs: np.ndarray) -> np.ndarray:
    """Start indices of the runs of equal consecutive addresses, with ``addrs.size`` appended."""
    if addrs.size == 0:
        return np.zeros(1, dtype=np.int64)
    edges = np.flatnonzero(addrs[1:] != addrs[:-1]) + 1
    return np.concatenate(([0], edges, [addrs.size])).astype(np.int64)


class BlockReader:
    """Fetch and decode tree blocks, one at a time or many per SQL query, through one cache.

    Parameters
    ----------
    store
        The SQLite block store.
    cache_bytes
        Budget of the decoded-block cache (internal nodes and point blocks together); 0 disables it.
    """

    def __init__(self, store: BlockStore, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.store = store
        self.cache = BlockCache(cache_bytes, keep=_own)

    def remember_node(self, addr: int, node: Node) -> None:
        """Put a freshly committed node into the cache (it must not be changed afterwards)."""
        self.cache.put(addr, node, NODE_BYTES)

    def remember_points(self, addr: int, block: PointBlock) -> None:
        """Put a private copy of a freshly committed leaf or group into the cache."""
        if self.cache.capacity:
            mine = block.private()
            self.cache.put(addr, mine, mine.nbytes())

    def forget_stream(self, sid: int) -> None:
        """Drop every cached block of stream number ``sid`` (after its blocks were deleted)."""
        self.cache.drop_range(sid << SEQ_BITS, ((sid + 1) << SEQ_BITS) - 1)

    def node(self, addr: int) -> Node:
        """One internal node."""
        return self.nodes([addr])[0]

    def nodes(self, addrs: Sequence[int]) -> list[Node]:
        """Internal nodes for ``addrs``, in the same order."""
        hits = self.cache.get_many(addrs)
        missing = [a for a in addrs if a not in hits]
        if missing:
            raw = self.store.read_blocks(missing)
            for a in missing:
                data = raw.get(a)
                if data is None:
                    raise MissingBlock(a)
                node = decode_node(data)
                self.cache.put(a, node, NODE_BYTES)
                hits[a] = node
        return [hits[a] for a in addrs]  # type: ignore[misc]

    def cached_nodes(self, addrs: Sequence[int]) -> list[Node] | None:
        """Internal nodes for ``addrs`` if every one is cached, else None (never reads the store)."""
        if len(addrs) == 1:  # the levels of a short walk: no dict of hits
            node = self.cache.get(addrs[0])
            return None if node is None else [node]  # type: ignore[list-item]
        hits = self.cache.get_many(addrs)
        if any(a not in hits for a in addrs):
            return None
        return [hits[a] for a in addrs]  # type: ignore[misc]

    def _fetch_views(self, addrs: list[int]) -> list[LeafView]:
        """Encoded blocks for ``addrs`` (distinct), in order, with one SQL query."""
        raw = self.store.read_blocks(addrs)
        try:
            return [LeafView(raw[a]) for a in addrs]
        except KeyError as exc:
            raise MissingBlock(exc.args[0]) from None

    def fetch_encoded(self, addrs: list[int]) -> dict[int, bytes]:
        """The stored bytes of the blocks ``addrs`` (distinct), with one SQL query; nothing is decoded
        or cached."""
        raw = self.store.read_blocks(addrs)
        for a in addrs:
            if a not in raw:
                raise MissingBlock(a)
        return raw

    def decode_encoded(
        self, addrs: list[int], raw: dict[int, bytes], admit: bool, views: list[LeafView] | None = None
    ) -> dict[int, PointBlock]:
        """Decode the fetched blocks ``addrs`` of ``raw`` (or their ``views``) in one batch; cache
        them when ``admit``."""
        if views is None:
            views = [LeafView(raw[a]) for a in addrs]
        t, v = decode_views(views)
        return dict(zip(addrs, self._keep(addrs, views, t, v, admit), strict=True))

    def admits(self, counts: np.ndarray) -> bool:
        """Whether a read of leaves with these point counts may add blocks to the cache (see
        :meth:`_admits`)."""
        return self._admits(counts)

    def _keep(
        self, addrs: list[int], views: list[LeafView], t: np.ndarray, v: np.ndarray, cache: bool = True
    ) -> list[PointBlock]:
        """Freshly decoded blocks (``t``, ``v``: their points, concatenated, owned by nobody else).

        With ``cache`` (and a cache) ``t`` and ``v`` are made read-only and each block is cached as a
        view of them: no copy per block (the cache copies a block out only if it keeps it for long).
        Otherwise the blocks are plain views and nothing is cached.
        """
        keep = cache and self.cache.capacity > 0
        if keep:
            _read_only(t, v)  # before the views are cut: a view keeps the flags it was made with
        out: list[PointBlock] = []
        pos = 0
        for view in views:
            end = pos + view.size
            out.append(PointBlock(t[pos:end], v[pos:end], view.bounds))
            pos = end
        if keep:
            self.cache.put_many(
                (a, block, POINT_BYTES * view.size + (ENTRY_OVERHEAD if view.bounds is None else GROUPED))
                for a, block, view in zip(addrs, out, views, strict=True)
            )
        return out

    def point_blocks(self, addrs: Sequence[int]) -> dict[int, PointBlock]:
        """Decoded leaf or group blocks by address (one SQL query and one decode for the uncached ones)."""
        return self._blocks(list(dict.fromkeys(addrs)), admit=True)

    def leaf(self, addr: int, slot: int) -> Leaf:
        """The ``(times, values)`` of the leaf in slot ``slot`` whose slot address is ``addr``."""
        return self.point_blocks([addr])[addr].leaf(slot)

    def _batches(
        self, addrs: np.ndarray, counts: np.ndarray, batch: int
    ) -> Iterator[tuple[int, int, list[int]]]:
        """``(first ref, end ref, block addresses)`` for groups of ref runs (see :func:`_run_batches`)."""
        runs = _runs(addrs)
        for r, r_end in _run_batches(runs, counts, batch):
            yield int(runs[r]), int(runs[r_end]), addrs[runs[r:r_end]].tolist()

    def _gather_refs(
        self,
        addrs: np.ndarray,
        slots: np.ndarray,
        counts: np.ndarray,
        blocks: list[int],
        out: tuple[np.ndarray, np.ndarray] | None,
        admit: bool,
    ) -> Leaf:
        """Points of consecutive leaf references (runs of equal address, one run per entry of ``blocks``).

        A batch with no cached block is decoded as without a cache (straight into ``out`` when every
        block is wanted whole and nothing is admitted) and, if ``admit``, its blocks are cached as views
        of the decoded arrays, which are then copied into ``out`` with one copy per column; a batch
        with cached blocks concatenates (or gathers from) the decoded arrays.
        """
        want = int(counts.sum())
        hits = self.cache.get_many(blocks) if self.cache.capacity else {}
        if not hits:
            views = self._fetch_views(blocks)
            whole = sum(x.size for x in views) == want  # the usual case: every block is wanted whole
            if whole and not admit:
                return decode_views(views, out)
            t, v = decode_views(views)
            if admit:
                self._keep(blocks, views, t, v)
            if whole:
                if out is None:
                    return t, v
                np.copyto(out[0], t)
                np.copyto(out[1], v)
                return out
            cuts = _run_slices(addrs, slots, counts, [x.size for x in views], [x.bounds for x in views])
            if cuts is not None:
                return _cut(t, v, cuts, out)
            idx = self._gather_index(addrs, slots, counts, [x.size for x in views], [x.bounds for x in views])
            return self._take(t, v, idx, out)
        missing = [a for a in blocks if a not in hits]
        if missing:
            views = self._fetch_views(missing)
            t, v = decode_views(views)
            hits.update(zip(missing, self._keep(missing, views, t, v, admit), strict=True))
        parts: list[PointBlock] = [hits[a] for a in blocks]  # type: ignore[misc]
        ts = [p.t for p in parts]
        vs = [p.v for p in parts]
        if sum(p.size for p in parts) == want:
            if out is None:
                return np.concatenate(ts), np.concatenate(vs)
            np.concatenate(ts, out=out[0])
            np.concatenate(vs, out=out[1])
            return out
        sizes = [p.size for p in parts]
        cuts = _run_slices(addrs, slots, counts, sizes, [p.bounds for p in parts])
        if cuts is not None:  # slices of the cached blocks, concatenated once
            starts = np.cumsum([0, *sizes[:-1]]).tolist()
            ts = [p.t[i - s0 : j - s0] for p, s0, (i, j) in zip(parts, starts, cuts, strict=True)]
            vs = [p.v[i - s0 : j - s0] for p, s0, (i, j) in zip(parts, starts, cuts, strict=True)]
            if out is None:
                return np.concatenate(ts), np.concatenate(vs)
            np.concatenate(ts, out=out[0])
            np.concatenate(vs, out=out[1])
            return out
        t, v = np.concatenate(ts), np.concatenate(vs)
        idx = self._gather_index(addrs, slots, counts, sizes, [p.bounds for p in parts])
        return self._take(t, v, idx, out)

    @staticmethod
    def _gather_index(
        addrs: np.ndarray,
        slots: np.ndarray,
        counts: np.ndarray,
        sizes_list: list[int],
        bounds_list: list[np.ndarray | None],
    ) -> np.ndarray:
        """Positions, in the concatenation of the blocks, of the points of every reference in order."""
        sizes = np.array(sizes_list, dtype=np.int64)
        block_first = np.zeros(sizes.size, dtype=np.int64)
        np.cumsum(sizes[:-1], out=block_first[1:])
        run_of = np.cumsum(np.concatenate(([0], addrs[1:] != addrs[:-1]))).astype(np.int64)
        first = block_first[run_of]
        grouped = [i for i, b in enumerate(bounds_list) if b is not None]
        if grouped:
            bounds = np.zeros((sizes.size, 65), dtype=np.int64)
            for i in grouped:
                bounds[i] = bounds_list[i]  # type: ignore[assignment]
            first = first + bounds[run_of, slots]
        ref_first = np.zeros(counts.size, dtype=np.int64)
        np.cumsum(counts[:-1], out=ref_first[1:])
        return np.repeat(first - ref_first, counts) + np.arange(int(counts.sum()), dtype=np.int64)

    @staticmethod
    def _take(
        t: np.ndarray, v: np.ndarray, idx: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None
    ) -> Leaf:
        if out is None:
            return t[idx], v[idx]
        np.take(t, idx, out=out[0])
        np.take(v, idx, out=out[1])
        return out

    def _admits(self, counts: np.ndarray) -> bool:
        """Whether a read of leaves with these point counts may add blocks to the cache.

        A read larger than the whole cache could never be served from it again (it would evict its own
        first blocks before reaching its last); admitting it would only push out everything else.
        """
        return bool(self.cache.capacity) and int(counts.sum()) * POINT_BYTES <= self.cache.capacity

    def _pipelined(
        self, addrs: np.ndarray, jobs: Sequence[Callable[[], T]], caller_works: bool = True
    ) -> Iterator[T]:
        """The results of the batch ``jobs`` of a read of ``addrs``, in order.

        The jobs run here, in the caller's thread, when every block is cached (each job is then a
        few memory copies) and when the caller works on each result itself and says so
        (``caller_works``: the server's senders, whose event loop sends one chunk while a worker
        thread reads the next). Otherwise they are decoded ahead in the decode pool, on every core.

        Measured on a cold 10^7-point chunked read: with byte-plane blocks (format 4, decoded as
        Python between numpy calls, under the GIL) decoding ahead cost 10-70 % more CPU for no gain
        in wall time, and inside the server 450-500 against 390 ms of server CPU per read. pco
        blocks (format 5) decode with the GIL released: ``Engine.iter_raw_pieces`` then ran at
        34-50 against 30-32 Mpt/s, alternating in the same minutes (CPU 310-440 against 315-338 ms),
        while the server's ArrowRawValues read lost 10-20 % when its worker thread decoded ahead
        (session 7), so the server's senders still decode in their own thread.
        """
        if len(jobs) < 2 or caller_works or self.all_cached(addrs):
            return (job() for job in jobs)
        return ahead(jobs, decode_workers())

    def scan(
        self, addrs: np.ndarray, slots: np.ndarray, counts: np.ndarray, batch: int = 128
    ) -> Iterator[Leaf]:
        """Concatenated ``(times, values)`` of consecutive groups of leaf references, in order.

        ``addrs``, ``slots`` and ``counts`` (int64 arrays) describe the leaves in time order. One cache
        lookup, and for the uncached blocks one SQL query and one vectorised decode, per ~``batch``
        blocks; groups of ~128 blocks keep the temporary arrays small enough to be recycled. Arrays of
        blocks that were just admitted to the cache are read-only.
        """
        admit = self._admits(counts)
        gather = self._gather_refs
        jobs = [
            functools.partial(gather, addrs[lo:hi], slots[lo:hi], counts[lo:hi], blocks, None, admit)
            for lo, hi, blocks in self._batches(addrs, counts, batch)
        ]
        return self._pipelined(addrs, jobs)

    def scan_runs(
        self,
        addrs: np.ndarray,
        slots: np.ndarray,
        counts: np.ndarray,
        batch: int = 128,
        ahead: bool = False,
    ) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
        """The points of consecutive leaf references as views, one time and one value array per block.

        References are taken as for :meth:`scan`, but nothing is concatenated: each run of references
        to one block becomes a view of that block's decoded times and one of its values (a cached
        block's arrays are read-only), so a caller that copies the points into arrays of its own
        choosing copies them once. Each step yields the ``(times, values)`` lists of about ``batch``
        blocks, found with one cache lookup and at most one SQL query, and decoded in the caller's
        thread, or with ``ahead`` in the decode pool while the caller works on the previous step
        (see :meth:`_pipelined`).
        """
        admit = self._admits(counts)
        runs = _runs(addrs)
        steps = _run_batches(runs, counts, batch)
        found_batches = self._pipelined(
            addrs,
            [functools.partial(self._blocks, addrs[runs[r:e]].tolist(), admit) for r, e in steps],
            caller_works=not ahead,
        )
        for (r, r_end), found in zip(steps, found_batches, strict=True):
            first = runs[r:r_end]
            blocks = addrs[first].tolist()
            parts = [found[a] for a in blocks]
            if all(p.bounds is None for p in parts):  # plain leaves: each block is wanted whole
                yield [p.t for p in parts], [p.v for p in parts]
                continue
            last = runs[r + 1 : r_end + 1] - 1
            wants = np.add.reduceat(counts[runs[r] : runs[r_end]], first - runs[r]).tolist()
            ts: list[np.ndarray] = []
            vs: list[np.ndarray] = []
            for block, a, b, s0, s1, want in zip(
                parts,
                first.tolist(),
                last.tolist(),
                slots[first].tolist(),
                slots[last].tolist(),
                wants,
                strict=True,
            ):
                if block.bounds is None:
                    ts.append(block.t)
                    vs.append(block.v)
                    continue
                i, j = int(block.bounds[s0]), int(block.bounds[s1 + 1])
                if j - i == want:
                    ts.append(block.t[i:j])
                    vs.append(block.v[i:j])
                    continue
                # The group holds points no reference wants between these slots (a leaf deleted or
                # rewritten since the group was written): one slice per referenced slot.
                for slot in slots[a : b + 1].tolist():
                    i, j = int(block.bounds[slot]), int(block.bounds[slot + 1])
                    ts.append(block.t[i:j])
                    vs.append(block.v[i:j])
            yield ts, vs

    def holds(self, blocks: list[int]) -> bool:
        """Whether every one of the decoded blocks ``blocks`` (addresses, repeats allowed) is cached."""
        if not self.cache.capacity:
            return not blocks
        return self.cache.holds_all(blocks)

    def all_cached(self, addrs: np.ndarray) -> bool:
        """Whether every block of the leaf references ``addrs`` is decoded in the cache."""
        if not self.cache.capacity:
            return addrs.size == 0
        return self.cache.holds_all(addrs[_runs(addrs)[:-1]].tolist())

    def _blocks(self, blocks: list[int], admit: bool) -> dict[int, PointBlock]:
        """Decoded blocks for the distinct addresses ``blocks``: cached ones, the rest fetched and decoded."""
        found: dict[int, PointBlock] = self.cache.get_many(blocks) if self.cache.capacity else {}  # type: ignore[assignment]
        missing = [a for a in blocks if a not in found]
        if missing:
            views = self._fetch_views(missing)
            t, v = decode_views(views)
            found.update(zip(missing, self._keep(missing, views, t, v, admit), strict=True))
        return found

    def read_into(self, addrs: np.ndarray, slots: np.ndarray, counts: np.ndarray, batch: int = 128) -> Leaf:
        """Read leaves (described as for :meth:`scan`) straight into two preallocated arrays.

        Uncached batches are decoded in the decode pool, each into its own slice of the result.
        """
        total = int(counts.sum())
        out_t = np.empty(total, dtype=np.int64)
        out_v = np.empty(total, dtype=np.float64)
        pos = 0
        admit = self._admits(counts)
        jobs: list[Callable[[], Leaf]] = []
        for lo, hi, blocks in self._batches(addrs, counts, batch):
            size = int(counts[lo:hi].sum())
            part = (out_t[pos : pos + size], out_v[pos : pos + size])
            refs = (addrs[lo:hi], slots[lo:hi], counts[lo:hi])
            jobs.append(functools.partial(self._gather_refs, *refs, blocks, part, admit))
            pos += size
        for _ in self._pipelined(addrs, jobs, caller_works=False):
            pass
        return out_t, out_v
