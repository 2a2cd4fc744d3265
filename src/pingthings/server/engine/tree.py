"""Copy-on-write insert and delete on one stream's tree.

A :class:`TreeWriter` builds one new generation: every node on a modified path is copied, its changed slots
are stamped with the new generation, and the new blocks are collected in :attr:`TreeWriter.pending` for the
caller to commit in one transaction. Unchanged subtrees are shared with older versions.

Leaves are written when their parent node is: the new leaves of one node that hold fewer than
``SMALL_LEAF`` points (or fewer than ``BULK_LEAF`` when one write makes several of them, as a bulk load
does) go into leaf groups of at most ``GROUP_POINTS`` points (one block each, see :mod:`.leaf_codec`),
others into blocks of their own. When the node's small leaves hold ``GROUP_POINTS``
points or fewer in all, the unchanged ones are regrouped with the new ones, so a node filled by many small
inserts still ends up as one group. Grouping is physical only: every leaf keeps its own slot, statistics
and generation, so versions, statistics and Changes are exactly those of the ungrouped tree.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from pingthings.server.engine import decode_pool
from pingthings.server.engine.blocks import BlockReader, Leaf, PointBlock
from pingthings.server.engine.layout import LEAF_MAX, PW_STEP, ROOT_PW, ROOT_START, can_split
from pingthings.server.engine.merge import MergePolicy, merge_points
from pingthings.server.engine.node import EMPTY, Node, Summary, encode_node
from pingthings.wire.blocks.leaf_codec import encode_group, encode_leaf

#: Leaves with fewer points than this are stored in leaf groups (measured: below ~256 points per leaf the
#: fixed cost of a block dominates insert and read time).
SMALL_LEAF: int = 256
#: Most points in one leaf group (bounds what a small insert into a grouped node rewrites).
GROUP_POINTS: int = 8192
#: Leaves with fewer points than this are also grouped when a write makes two or more of them in one
#: node (a bulk load): a 120 Hz stream's leaves hold ~515 points, and a cold read of them spent more
#: than half its time on per-block work (SQLite row, LZ4 call, decode set-up, cache entry). A write that
#: makes one such leaf (appending to the tail) still writes it alone, so live ingest rewrites no more
#: than before.
BULK_LEAF: int = LEAF_MAX

#: What building a child gives: a summary of a new internal node, or the points of a new leaf.
Child = Summary | Leaf
#: New leaves of one node: (slots increasing, point counts, times, values concatenated in slot order).
FreshLeaves = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _gather(pieces: dict[int, Leaf]) -> FreshLeaves | None:
    """New (non-empty) leaves given slot by slot, as :data:`FreshLeaves`."""
    if not pieces:
        return None
    order = sorted(pieces)
    return (
        np.array(order, dtype=np.int64),
        np.array([pieces[i][0].size for i in order], dtype=np.int64),
        np.concatenate([pieces[i][0] for i in order]),
        np.concatenate([pieces[i][1] for i in order]),
    )


#: Leaves of at least this many points are encoded in the decode pool while the writer goes on
#: (pco releases the GIL while it compresses, so a bulk load encodes on every core); smaller ones
#: here, where a hand-off would cost more than it saves.
POOL_ENCODE_POINTS = 2048


def _encoded(encode: Callable[..., bytes], *args: np.ndarray) -> bytes | Future[bytes]:
    """``encode(*args)``: its bytes, or a future of them when the leaf is large enough for the pool."""
    if args[-1].size < POOL_ENCODE_POINTS:
        return encode(*args)
    return decode_pool.submit(encode, *args)


class TreeWriter:
    """Builds generation ``gen`` of a tree.

    Parameters
    ----------
    reader
        Access to existing blocks.
    alloc
        Returns a fresh block address on each call.
    gen
        The version being written.
    """

    def __init__(self, reader: BlockReader, alloc: Callable[[], int], gen: int) -> None:
        self.reader = reader
        self.alloc = alloc
        self.gen = gen
        self._pending: list[tuple[int, bytes | Future[bytes]]] = []
        self.new_nodes: list[tuple[int, Node]] = []
        self.new_points: list[tuple[int, PointBlock]] = []

    @property
    def pending(self) -> list[tuple[int, bytes]]:
        """The new blocks, ``(address, bytes)``, once every leaf encoded in the pool is done (an
        encoding error is raised here, before anything is committed)."""
        return [(a, b if isinstance(b, bytes) else b.result()) for a, b in self._pending]

    # ------------------------------------------------------------ writing blocks
    def _write_node(self, node: Node, fresh: FreshLeaves | None, force: bool = False) -> Summary:
        """Write the new leaves ``fresh`` of ``node``, then the node itself."""
        if fresh is not None:
            self._place_leaves(node, *fresh)
        n, mn, mx, total, m2 = node.total()
        if n == 0 and not force:
            return EMPTY
        addr = self.alloc()
        self._pending.append((addr, encode_node(node)))
        self.new_nodes.append((addr, node))
        return Summary(addr, False, n, mn, mx, total, m2)

    def _place_leaves(
        self, node: Node, slots: np.ndarray, counts: np.ndarray, t: np.ndarray, v: np.ndarray
    ) -> None:
        """Fill the slots of new leaves (statistics, generation) and write their blocks.

        ``slots`` (increasing) and ``counts`` (positive) describe the leaves, whose points are ``t``, ``v``
        concatenated in slot order.
        """
        starts = np.zeros(slots.size, dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        node.count[slots] = counts
        if slots.size == 1:  # the usual write path: one leaf
            total = float(v.sum())
            dev = v - total / v.size
            node.min[slots] = v.min()
            node.max[slots] = v.max()
            node.sum[slots] = total
            node.m2[slots] = float(np.dot(dev, dev))
        else:
            sums = np.add.reduceat(v, starts)
            dev = v - np.repeat(sums / counts, counts)
            node.min[slots] = np.minimum.reduceat(v, starts)
            node.max[slots] = np.maximum.reduceat(v, starts)
            node.sum[slots] = sums
            node.m2[slots] = np.add.reduceat(dev * dev, starts)
        node.leaf[slots] = True
        node.gen[slots] = self.gen
        node.addr[slots] = 0  # set when the blocks get addresses

        small = counts < SMALL_LEAF
        bulk = counts < BULK_LEAF
        if int(np.count_nonzero(bulk)) >= 2:
            small = bulk
        for j in np.flatnonzero(~small).tolist():
            a, b = int(starts[j]), int(starts[j] + counts[j])
            self._write_block(node, slots[j : j + 1], t[a:b], v[a:b])
        if not small.any():
            return
        if not small.all():
            keep = np.repeat(small, counts)
            slots, counts = slots[small], counts[small]
            t, v = t[keep], v[keep]
        # Regroup the unchanged small leaves too when everything fits in one group.
        others = np.flatnonzero(node.leaf & (node.addr != 0) & (node.count < SMALL_LEAF))
        if others.size and int(node.count[others].sum()) + int(counts.sum()) <= GROUP_POINTS:
            pieces = {int(i): self.reader.leaf(int(node.addr[i]), int(i)) for i in others.tolist()}
            first = 0
            for i, c in zip(slots.tolist(), counts.tolist(), strict=True):
                pieces[i] = (t[first : first + c], v[first : first + c])
                first += c
            order = sorted(pieces)
            slots = np.array(order, dtype=np.int64)
            counts = np.array([pieces[i][0].size for i in order], dtype=np.int64)
            t = np.concatenate([pieces[i][0] for i in order])
            v = np.concatenate([pieces[i][1] for i in order])
        # Cut into groups of at most GROUP_POINTS points (a group of one leaf is a plain leaf).
        a = first = 0
        held = 0
        for j, c in enumerate(counts.tolist()):
            if j > a and held + c > GROUP_POINTS:
                self._write_block(node, slots[a:j], t[first : first + held], v[first : first + held])
                a, first, held = j, first + held, 0
            held += c
        self._write_block(node, slots[a:], t[first : first + held], v[first : first + held])

    def _write_block(self, node: Node, slots: np.ndarray, t: np.ndarray, v: np.ndarray) -> None:
        """Write one leaf (one slot) or leaf group (several slots) and point the slots at it."""
        addr = self.alloc()
        if slots.size == 1:
            self._pending.append((addr, _encoded(encode_leaf, t, v)))
            bounds = None
        else:
            counts = node.count[slots]
            self._pending.append((addr, _encoded(encode_group, slots, counts, t, v)))
            per_slot = np.zeros(65, dtype=np.int64)
            per_slot[slots + 1] = counts
            bounds = np.cumsum(per_slot)
        node.addr[slots] = addr
        self.new_points.append((addr, PointBlock(t, v, bounds)))

    # ------------------------------------------------------------------ insert
    def insert(self, root: int, t: np.ndarray, v: np.ndarray, policy: MergePolicy) -> int:
        """Insert a prepared (sorted, batch-deduplicated) batch; returns the new root address."""
        node = self.reader.node(root) if root else None
        summary = self._insert_node(node, ROOT_PW, ROOT_START, t, v, policy, fresh_gen=0, force=True)
        return root if summary is None else summary.addr

    def _new_subtree(self, parent_pw: int, start: int, t: np.ndarray, v: np.ndarray, slot_gen: int) -> Child:
        """A leaf or, for more than LEAF_MAX points, a new internal node for one bucket.

        ``slot_gen`` is the generation the parent slot had before this write. A new node's empty slots
        inherit it: their buckets hold no points now and held none since then (a leaf being split had
        none there either), so Changes still sees deletions that happened before the node was created.
        """
        if t.size <= LEAF_MAX or not can_split(parent_pw):
            return t, v
        summary = self._insert_node(None, parent_pw - PW_STEP, start, t, v, MergePolicy.NEVER, slot_gen)
        assert summary is not None
        return summary

    def _insert_node(
        self,
        node: Node | None,
        pw: int,
        start: int,
        t: np.ndarray,
        v: np.ndarray,
        policy: MergePolicy,
        fresh_gen: int = 0,
        force: bool = False,
    ) -> Summary | None:
        if node is not None:
            new = node.copy()
        else:
            new = Node()
            new.gen[:] = fresh_gen
        buckets = (t - start) >> pw
        edges = np.flatnonzero(buckets[1:] != buckets[:-1]) + 1
        if edges.size < 4:
            # A write path through the tree usually touches one bucket per node: plain Python is cheapest.
            cuts = edges.tolist()
            pieces: dict[int, Leaf] = {}
            changed = node is None
            for i, lo, hi in zip(buckets[[0, *cuts]].tolist(), [0, *cuts], [*cuts, t.size], strict=True):
                changed |= self._insert_child(new, i, pw, start, t[lo:hi], v[lo:hi], policy, pieces)
            return self._write_node(new, _gather(pieces), force=force) if changed else None
        starts = np.zeros(edges.size + 1, dtype=np.int64)
        starts[1:] = edges
        sizes = np.empty_like(starts)
        sizes[:-1] = np.subtract(edges, starts[:-1])
        sizes[-1] = t.size - starts[-1]
        slots = buckets[starts]
        # Points landing in empty slots become leaves as they are, without a Python step per bucket.
        simple = new.addr[slots] == 0
        if can_split(pw):
            simple &= sizes <= LEAF_MAX
        changed = node is None or bool(simple.any())
        pieces = {}
        for j in np.flatnonzero(~simple).tolist():
            lo, hi = int(starts[j]), int(starts[j] + sizes[j])
            changed |= self._insert_child(new, int(slots[j]), pw, start, t[lo:hi], v[lo:hi], policy, pieces)
        if not changed:
            return None
        fresh: FreshLeaves | None = None
        if not pieces:
            if simple.all():
                fresh = (slots, sizes, t, v)
            elif simple.any():
                keep = np.repeat(simple, sizes)
                fresh = (slots[simple], sizes[simple], t[keep], v[keep])
        else:
            for j in np.flatnonzero(simple).tolist():
                lo, hi = int(starts[j]), int(starts[j] + sizes[j])
                pieces[int(slots[j])] = (t[lo:hi], v[lo:hi])
            fresh = _gather(pieces)
        return self._write_node(new, fresh, force=force)

    def _insert_child(
        self,
        new: Node,
        i: int,
        pw: int,
        start: int,
        t: np.ndarray,
        v: np.ndarray,
        policy: MergePolicy,
        pieces: dict[int, Leaf],
    ) -> bool:
        """Insert into bucket ``i`` of ``new``: a new internal node's summary goes into its slot, a new
        leaf's points into ``pieces``. Returns whether anything changed."""
        child_start = start + (i << pw)
        addr = int(new.addr[i])
        if addr == 0:
            got: Child | None = self._new_subtree(pw, child_start, t, v, int(new.gen[i]))
        elif new.leaf[i]:
            got = self._insert_leaf(addr, i, pw, child_start, t, v, policy, int(new.gen[i]))
        else:
            got = self._insert_node(self.reader.node(addr), pw - PW_STEP, child_start, t, v, policy)
        if got is None:
            return False
        if isinstance(got, Summary):
            new.set_slot(i, got, self.gen)
        else:
            pieces[i] = got
        return True

    def _insert_leaf(
        self,
        addr: int,
        slot: int,
        parent_pw: int,
        start: int,
        t: np.ndarray,
        v: np.ndarray,
        policy: MergePolicy,
        slot_gen: int,
    ) -> Child | None:
        old_t, old_v = self.reader.leaf(addr, slot)
        mt, mv = merge_points(old_t, old_v, t, v, policy)
        if mt is old_t and mv is old_v:
            return None
        return self._new_subtree(parent_pw, start, mt, mv, slot_gen)

    # ------------------------------------------------------------------ delete
    def delete(self, root: int, lo: int, hi: int) -> int:
        """Remove points with ``lo <= t < hi``; returns the new root address."""
        if not root:
            return root
        summary = self._delete_node(self.reader.node(root), ROOT_PW, ROOT_START, lo, hi, force=True)
        return root if summary is None else summary.addr

    def _delete_node(
        self, node: Node, pw: int, start: int, lo: int, hi: int, force: bool = False
    ) -> Summary | None:
        width = 1 << pw
        first = max(0, (lo - start) >> pw)
        last = min(63, (hi - 1 - start) >> pw)
        new: Node | None = None
        pieces: dict[int, Leaf] = {}
        for i in np.flatnonzero(node.addr[first : last + 1]).tolist():
            i += first
            bs = start + i * width
            addr = int(node.addr[i])
            if lo <= bs and bs + width <= hi:
                summary: Summary | None = EMPTY
            elif node.leaf[i]:
                lt, lv = self.reader.leaf(addr, i)
                a, b = np.searchsorted(lt, [lo, hi])
                if a == b:
                    continue
                if a == 0 and b == lt.size:
                    summary = EMPTY
                else:
                    pieces[i] = (np.concatenate((lt[:a], lt[b:])), np.concatenate((lv[:a], lv[b:])))
                    continue
            else:
                child = self.reader.node(addr)
                summary = self._delete_node(child, pw - PW_STEP, bs, lo, hi)
            if summary is not None:
                if new is None:
                    new = node.copy()
                new.set_slot(i, summary, self.gen)
        if new is None and not pieces:
            return None
        if new is None:
            new = node.copy()
        return self._write_node(new, _gather(pieces), force=force)
