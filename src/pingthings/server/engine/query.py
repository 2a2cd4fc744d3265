"""Read paths over one version of a tree: raw values, statistics, nearest point.

Traversals go level by level and fetch every block of a level with one SQL query. Statistics stop at the
first slot that lies entirely inside one window and inside the range, so fully covered leaves are never
read: the cost follows the number of windows and the depth, not the number of points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pingthings.server.engine.blocks import BlockReader
from pingthings.server.engine.layout import FANOUT, PW_STEP, ROOT_PW, ROOT_START
from pingthings.server.engine.node import Node
from pingthings.server.engine.stats import Contributions

_SLOTS = np.arange(FANOUT, dtype=np.int64)
#: Most leaves a statistics query reads one by one from their blocks (more go through
#: ``BlockReader.scan``'s batches, whose set-up costs more than a few leaves do).
FEW_LEAVES = 8
#: Most slots of a level's lone node that a statistics walk looks at one by one (more: as arrays).
SCALAR_SLOTS = 8


def _slot_range(start: int, pw: int, lo: int, hi: int) -> tuple[int, int]:
    """Indices ``[first, last]`` of the slots of a node at ``start`` that overlap ``[lo, hi)``."""
    return max(0, (lo - start) >> pw), min(FANOUT - 1, (hi - 1 - start) >> pw)


LeafRefs = tuple[np.ndarray, np.ndarray, np.ndarray]


def _sorted_refs(found: list[tuple[np.ndarray, ...]]) -> LeafRefs:
    """``(addrs, slots, counts)`` of leaves given as (bucket start, addr, slot, count) parts, time-ordered."""
    if not found:
        e = np.empty(0, dtype=np.int64)
        return e, e, e
    starts, addrs, slots, counts = (np.concatenate(col).astype(np.int64) for col in zip(*found, strict=True))
    if starts.size > 1 and not (starts[1:] > starts[:-1]).all():
        order = np.argsort(starts, kind="stable")
        addrs, slots, counts = addrs[order], slots[order], counts[order]
    return addrs, slots, counts


def leaves_with_counts(reader: BlockReader, root: int, lo: int, hi: int) -> LeafRefs:
    """``(addrs, slots, counts)`` (int64 arrays) of every leaf overlapping ``[lo, hi)``, in time order."""
    refs = _walk(reader, root, lo, hi, cached_only=False)
    assert refs is not None
    return refs


def cached_leaves_with_counts(reader: BlockReader, root: int, lo: int, hi: int) -> LeafRefs | None:
    """Like :func:`leaves_with_counts` from cached nodes alone; None as soon as one is not cached."""
    return _walk(reader, root, lo, hi, cached_only=True)


def _level(nodes: list[Node], name: str) -> np.ndarray:
    """One slot array of every node of a level as a ``(len(nodes), 64)`` matrix (a view when there
    is one node: a short query's levels usually have one, and stacking costs more than the rest)."""
    if len(nodes) == 1:
        return getattr(nodes[0], name)[None, :]  # type: ignore[no-any-return]
    return np.stack([getattr(n, name) for n in nodes])


def _walk(reader: BlockReader, root: int, lo: int, hi: int, cached_only: bool) -> LeafRefs | None:
    found: list[tuple[np.ndarray, ...]] = []
    frontier = [(root, ROOT_PW, ROOT_START)] if root else []
    while frontier:
        pw = frontier[0][1]  # one level: one point width
        addrs = [a for a, _, _ in frontier]
        nodes = reader.cached_nodes(addrs) if cached_only else reader.nodes(addrs)
        if nodes is None:
            return None
        addr = _level(nodes, "addr")
        bs = np.array([s for _, _, s in frontier], dtype=np.int64)[:, None] + (_SLOTS << pw)
        rows, cols = np.nonzero((addr != 0) & (bs + ((1 << pw) - 1) >= lo) & (bs < hi))
        is_leaf = _level(nodes, "leaf")[rows, cols]
        a, b = addr[rows, cols], bs[rows, cols]
        cnt = _level(nodes, "count")[rows, cols]
        found.append((b[is_leaf], a[is_leaf], cols[is_leaf], cnt[is_leaf]))
        inner = ~is_leaf
        frontier = [(x, pw - PW_STEP, y) for x, y in zip(a[inner].tolist(), b[inner].tolist(), strict=True)]
    return _sorted_refs(found)


def clip(t: np.ndarray, v: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The points of sorted times ``t`` (values ``v``) with ``lo <= t < hi``, as views.

    Most arrays clipped lie inside the range already (only a read's first and last leaves reach
    outside it); two scalar comparisons find that for less than a searchsorted costs."""
    if not t.size or (t[0] >= lo and t[-1] < hi):
        return t, v
    a, b = np.searchsorted(t, [lo, hi])
    return t[a:b], v[a:b]


def raw_values(reader: BlockReader, root: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Every point with ``lo <= t < hi`` as fresh ``(times, values)`` arrays."""
    t, v = reader.read_into(*leaves_with_counts(reader, root, lo, hi))
    return clip(t, v, lo, hi)


#: One chunk of a raw read as the blocks hold it: the time views, the value views, and the point count.
Pieces = tuple[list[np.ndarray], list[np.ndarray], int]


def iter_raw_pieces(
    reader: BlockReader, refs: LeafRefs, lo: int, hi: int, chunk: int, ahead: bool = False
) -> Iterator[Pieces]:
    """Yield the points with ``lo <= t < hi`` in chunks of exactly ``chunk`` points (the last fewer),
    each as views of the blocks that hold them, in order; nothing is copied.

    ``refs`` are the leaves overlapping the range, from :func:`leaves_with_counts`. The views of a
    cached block are read-only and must stay so. The work per block is a few list operations:
    chunk boundaries are found on the cumulative sizes. Leaves come in time order and only the first
    and the last can reach outside ``[lo, hi)``, so only the first block, and the last block of each
    batch, are clipped. With ``ahead`` the next batches are decoded in the decode pool while the
    caller works on this chunk (:meth:`BlockReader.scan_runs`).
    """
    ts: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    held = 0
    first = True
    for bt, bv in reader.scan_runs(*refs, ahead=ahead):
        if first:
            bt[0], bv[0] = clip(bt[0], bv[0], lo, hi)
            first = False
        bt[-1], bv[-1] = clip(bt[-1], bv[-1], lo, hi)
        ts += bt
        vs += bv
        held += sum(t.size for t in bt)
        while held >= chunk:
            ends = np.cumsum([t.size for t in ts])
            k = int(np.searchsorted(ends, chunk))  # the block holding the chunk's last point
            cut = chunk - (int(ends[k - 1]) if k else 0)
            yield [*ts[:k], ts[k][:cut]], [*vs[:k], vs[k][:cut]], chunk
            ts = [ts[k][cut:], *ts[k + 1 :]]
            vs = [vs[k][cut:], *vs[k + 1 :]]
            held -= chunk
    if held:
        yield ts, vs, held


def iter_raw_values(
    reader: BlockReader, refs: LeafRefs, lo: int, hi: int, chunk: int, ahead: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Like :func:`iter_raw_pieces`, with each chunk copied once into fresh ``(times, values)`` arrays."""
    for ts, vs, _ in iter_raw_pieces(reader, refs, lo, hi, chunk, ahead):
        yield np.concatenate(ts), np.concatenate(vs)


@dataclass(frozen=True)
class CachedBudget:
    """How much a walk served from the cache may do (it runs in an event loop, so it must stay short).

    Attributes
    ----------
    nodes
        Most internal nodes visited.
    points
        Most raw points of partially covered leaves scanned.
    """

    nodes: int
    points: int


def collect_stats(
    reader: BlockReader,
    root: int,
    lo: int,
    hi: int,
    key_of: Callable[[np.ndarray], np.ndarray],
    slot_fits: Callable[[int, np.ndarray], np.ndarray],
) -> Contributions:
    """Gather statistics contributions for the points in ``[lo, hi)``.

    Parameters
    ----------
    key_of
        Maps int64 times to int64 window keys.
    slot_fits
        ``slot_fits(pw, bucket_starts)`` says which buckets of a pw-``pw`` node lie inside one window.
    """
    out = _collect_stats(reader, root, lo, hi, key_of, slot_fits, None)
    assert out is not None
    return out


def cached_stats(
    reader: BlockReader,
    root: int,
    lo: int,
    hi: int,
    key_of: Callable[[np.ndarray], np.ndarray],
    slot_fits: Callable[[int, np.ndarray], np.ndarray],
    budget: CachedBudget,
) -> Contributions | None:
    """Like :func:`collect_stats` from cached blocks alone, within ``budget``; None as soon as a
    node or leaf is not cached or the walk would exceed the budget (nothing is read from the store).
    """
    return _collect_stats(reader, root, lo, hi, key_of, slot_fits, budget)


def _scalar_step(
    node: Node,
    start: int,
    pw: int,
    bounds: tuple[int, int],
    lo: int,
    hi: int,
    key_of: Callable[[Any], Any],
    slots: list[tuple[int, int, float, float, float, float]],
    leaves: list[tuple[int, int, int, int]],
    below: list[tuple[int, int, int]],
) -> None:
    """The general step for one node whose slots overlapping ``[lo, hi)`` (``bounds``, the first
    and the last) are few, in Python scalars.

    Each overlapping slot that holds points either lies inside the range and inside one window
    (its summary goes to ``slots``), or is a leaf to read (``leaves``, as (bucket start, address,
    slot, count)), or an inner node to visit (``below``). The top levels of a short query, and every
    level of a query over a small stream, are like this; a dozen numpy operations on 64-slot arrays
    cost more than the handful of slots they look at (a 10-window query of a 1,200-point stream
    visits five levels).
    """
    first, last = bounds
    span = (1 << pw) - 1
    for i, c in enumerate(node.count[first : last + 1].tolist(), first):
        if not c:
            continue
        b = start + (i << pw)
        if b >= lo and b + span < hi and key_of(b) == key_of(b + span):
            slots.append((key_of(b), c, *_summary(node, i)))
        elif node.leaf[i]:
            leaves.append((b, int(node.addr[i]), i, c))
        else:
            below.append((int(node.addr[i]), pw - PW_STEP, b))


def _summary(node: Node, i: int) -> tuple[float, float, float, float]:
    """``(min, max, sum, m2)`` of slot ``i`` of ``node``, as Python floats."""
    return float(node.min[i]), float(node.max[i]), float(node.sum[i]), float(node.m2[i])


def _collect_stats(
    reader: BlockReader,
    root: int,
    lo: int,
    hi: int,
    key_of: Callable[[np.ndarray], np.ndarray],
    slot_fits: Callable[[int, np.ndarray], np.ndarray],
    budget: CachedBudget | None,
) -> Contributions | None:
    out = Contributions()
    if not root:
        return out
    frontier = [(root, ROOT_PW, ROOT_START)]
    leaf_refs: list[tuple[np.ndarray, ...]] = []  # (bucket start, address, slot, count), sorted later
    slots: list[tuple[int, int, float, float, float, float]] = []  # whole slots of scalar steps
    leaves: list[tuple[int, int, int, int]] = []  # leaves of scalar steps, as in leaf_refs
    visited = 0
    while frontier:
        # All nodes of one level share a point width: handle their 64 slots each as one (k, 64) matrix.
        pw = frontier[0][1]
        addrs_of_level = [a for a, _, _ in frontier]
        if budget is None:
            nodes = reader.nodes(addrs_of_level)
        else:
            visited += len(addrs_of_level)
            found = reader.cached_nodes(addrs_of_level) if visited <= budget.nodes else None
            if found is None:
                return None
            nodes = found
        if len(nodes) == 1:
            start = frontier[0][2]
            first, last = _slot_range(start, pw, lo, hi)
            if last - first < SCALAR_SLOTS:
                frontier = []
                _scalar_step(nodes[0], start, pw, (first, last), lo, hi, key_of, slots, leaves, frontier)
                continue
        counts = _level(nodes, "count")
        bs = np.array([s for _, _, s in frontier], dtype=np.int64)[:, None] + (_SLOTS << pw)
        last_times = bs + ((1 << pw) - 1)
        live = (counts > 0) & (last_times >= lo) & (bs < hi)
        whole = live & (bs >= lo) & (last_times < hi)
        whole &= slot_fits(pw, bs)
        if whole.any():
            rows, cols = np.nonzero(whole)
            out.add_slots(
                key_of(bs[rows, cols]),
                counts[rows, cols],
                _level(nodes, "min")[rows, cols],
                _level(nodes, "max")[rows, cols],
                _level(nodes, "sum")[rows, cols],
                _level(nodes, "m2")[rows, cols],
            )
        nxt: list[tuple[int, int, int]] = []
        rows, cols = np.nonzero(live & ~whole)
        if rows.size:
            addrs = _level(nodes, "addr")[rows, cols]
            is_leaf = _level(nodes, "leaf")[rows, cols]
            b = bs[rows, cols]
            leaf_refs.append((b[is_leaf], addrs[is_leaf], cols[is_leaf], counts[rows, cols][is_leaf]))
            inner = ~is_leaf
            pairs = zip(addrs[inner].tolist(), b[inner].tolist(), strict=True)
            nxt = [(a, pw - PW_STEP, x) for a, x in pairs]
        frontier = nxt
    if slots:
        keys, cnt, mn, mx, sm, m2 = zip(*slots, strict=True)
        out.add_slots(
            np.array(keys, np.int64),
            np.array(cnt, np.int64),
            *(np.array(c, np.float64) for c in (mn, mx, sm, m2)),
        )
    if not leaf_refs and len(leaves) <= FEW_LEAVES:
        leaves.sort()  # scalar steps of different levels may find them out of time order
        addr_list, slot_list = [x[1] for x in leaves], [x[2] for x in leaves]
        if budget is not None and (sum(x[3] for x in leaves) > budget.points or not reader.holds(addr_list)):
            return None
        if leaves:
            _add_few_leaves(reader, out, addr_list, slot_list, lo, hi, key_of)
        return out
    if leaves:
        leaf_refs.append(tuple(np.array(col, dtype=np.int64) for col in zip(*leaves, strict=True)))
    # Leaves come from different levels; scanning concatenates them, so they must be in time order.
    refs = _sorted_refs(leaf_refs)
    if budget is not None and (int(refs[2].sum()) > budget.points or not reader.all_cached(refs[0])):
        return None
    if 0 < refs[0].size <= FEW_LEAVES:  # a short query: each leaf from its block, no scan batches
        _add_few_leaves(reader, out, refs[0].tolist(), refs[1].tolist(), lo, hi, key_of)
        return out
    for lt, lv in reader.scan(*refs):
        ct, cv = clip(lt, lv, lo, hi)
        out.add_points(key_of(ct), cv)
    return out


def _add_few_leaves(
    reader: BlockReader,
    out: Contributions,
    addrs: list[int],
    slots: list[int],
    lo: int,
    hi: int,
    key_of: Callable[[np.ndarray], np.ndarray],
) -> None:
    """Add the points in ``[lo, hi)`` of a few leaves (in time order), each read from its block."""
    blocks = reader.point_blocks(addrs)
    pieces = [blocks[a].leaf(s) for a, s in zip(addrs, slots, strict=True)]
    if len(pieces) == 1:
        lt, lv = pieces[0]
    else:
        lt, lv = np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])
    ct, cv = clip(lt, lv, lo, hi)
    out.add_points(key_of(ct), cv)


def count(reader: BlockReader, root: int, lo: int, hi: int) -> int:
    """Number of points with ``lo <= t < hi``."""
    if not root:
        return 0
    total = 0
    frontier = [(root, ROOT_PW, ROOT_START)]
    leaf_refs: list[tuple[np.ndarray, ...]] = []  # (bucket start, address, slot, count)
    while frontier:
        nodes = reader.nodes([a for a, _, _ in frontier])
        nxt: list[tuple[int, int, int]] = []
        for (_, pw, start), node in zip(frontier, nodes, strict=True):
            first, last = _slot_range(start, pw, lo, hi)
            if first > last:
                continue
            idx = np.flatnonzero(node.count[first : last + 1]) + first
            bs = start + (idx << pw)
            whole = (bs >= lo) & (bs + ((1 << pw) - 1) < hi)
            total += int(node.count[idx[whole]].sum())
            part = idx[~whole]
            is_leaf = node.leaf[part]
            li = part[is_leaf]
            leaf_refs.append((bs[~whole][is_leaf], node.addr[li], li, node.count[li]))
            for i, b in zip(part[~is_leaf].tolist(), bs[~whole][~is_leaf].tolist(), strict=True):
                nxt.append((int(node.addr[i]), pw - PW_STEP, b))
        frontier = nxt
    for lt, _ in reader.scan(*_sorted_refs(leaf_refs)):
        a, b = np.searchsorted(lt, [lo, hi])
        total += int(b - a)
    return total


class NotInMemory(Exception):
    """A walk from the cache alone needed a block that is not cached, or went past its budget."""


class _Blocks:
    """Node and leaf access for :func:`_nearest_in`: through the reader, or (with a ``budget`` of
    blocks) from the cache alone, raising :class:`NotInMemory` instead of reading the store."""

    def __init__(self, reader: BlockReader, budget: int | None) -> None:
        self.reader = reader
        self.left = budget

    def _spend(self) -> None:
        if self.left is not None:
            self.left -= 1
            if self.left < 0:
                raise NotInMemory()

    def node(self, addr: int) -> Node:
        self._spend()
        if self.left is None:
            return self.reader.node(addr)
        found = self.reader.cached_nodes([addr])
        if found is None:
            raise NotInMemory()
        return found[0]

    def leaf(self, addr: int, slot: int) -> tuple[np.ndarray, np.ndarray]:
        self._spend()
        if self.left is not None and not self.reader.all_cached(np.array([addr], dtype=np.int64)):
            raise NotInMemory()
        return self.reader.leaf(addr, slot)


def nearest(reader: BlockReader, root: int, time: int, backward: bool) -> tuple[int, float] | None:
    """First point with ``t >= time`` (forward) or last point with ``t < time`` (backward)."""
    if not root:
        return None
    return _nearest_in(_Blocks(reader, None), root, ROOT_PW, ROOT_START, time, backward)


def cached_nearest(
    reader: BlockReader, root: int, time: int, backward: bool, max_blocks: int
) -> tuple[int, float] | None:
    """Like :func:`nearest` from cached blocks alone, visiting at most ``max_blocks`` nodes and
    leaves; raises :class:`NotInMemory` when it would need more or an uncached one."""
    if not root:
        return None
    return _nearest_in(_Blocks(reader, max_blocks), root, ROOT_PW, ROOT_START, time, backward)


def _nearest_in(
    blocks: _Blocks, addr: int, pw: int, start: int, time: int, backward: bool
) -> tuple[int, float] | None:
    node = blocks.node(addr)
    if backward:
        last = min(FANOUT - 1, (time - 1 - start) >> pw)
        if last < 0:
            return None
        slots = (np.flatnonzero(node.count[: last + 1]))[::-1].tolist()
    else:
        first = max(0, (time - start) >> pw)
        if first >= FANOUT:
            return None
        slots = (np.flatnonzero(node.count[first:]) + first).tolist()
    for i in slots:
        child = int(node.addr[i])
        if node.leaf[i]:
            lt, lv = blocks.leaf(child, i)
            j = int(np.searchsorted(lt, time, side="left"))
            if backward:
                if j > 0:
                    return int(lt[j - 1]), float(lv[j - 1])
            elif j < lt.size:
                return int(lt[j]), float(lv[j])
        else:
            found = _nearest_in(blocks, child, pw - PW_STEP, start + (i << pw), time, backward)
            if found is not None:
                return found
    return None
