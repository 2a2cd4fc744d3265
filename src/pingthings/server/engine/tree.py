"""Copy-on-write insert and delete on one stream's tree.

A :class:`TreeWriter` builds one new generation: every node on a modified path is copied, its changed slots
are stamped with the new generation, and the new blocks are collected in :attr:`TreeWriter.pending` for the
caller to commit in one transaction. Unchanged subtrees are shared with older versions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pingthings.server.engine.blocks import BlockReader, Leaf
from pingthings.server.engine.layout import LEAF_MAX, PW_STEP, ROOT_PW, ROOT_START, can_split
from pingthings.server.engine.leaf_codec import encode_leaf
from pingthings.server.engine.merge import MergePolicy, merge_points
from pingthings.server.engine.node import EMPTY, Node, Summary, encode_node, leaf_summary


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
        self.pending: list[tuple[int, bytes]] = []
        self.new_nodes: list[tuple[int, Node]] = []
        self.new_leaves: list[tuple[int, Leaf]] = []

    # ------------------------------------------------------------ writing blocks
    def _write_leaf(self, t: np.ndarray, v: np.ndarray) -> Summary:
        if t.size == 0:
            return EMPTY
        addr = self.alloc()
        self.pending.append((addr, encode_leaf(t, v)))
        self.new_leaves.append((addr, (t, v)))
        return leaf_summary(addr, v)

    def _write_node(self, node: Node, force: bool = False) -> Summary:
        n, mn, mx, total, m2 = node.total()
        if n == 0 and not force:
            return EMPTY
        addr = self.alloc()
        self.pending.append((addr, encode_node(node)))
        self.new_nodes.append((addr, node))
        return Summary(addr, False, n, mn, mx, total, m2)

    # ------------------------------------------------------------------ insert
    def insert(self, root: int, t: np.ndarray, v: np.ndarray, policy: MergePolicy) -> int:
        """Insert a prepared (sorted, batch-deduplicated) batch; returns the new root address."""
        node = self.reader.node(root) if root else None
        summary = self._insert_node(node, ROOT_PW, ROOT_START, t, v, policy, fresh_gen=0, force=True)
        return root if summary is None else summary.addr

    def _new_subtree(
        self, parent_pw: int, start: int, t: np.ndarray, v: np.ndarray, slot_gen: int
    ) -> Summary:
        """A leaf or, for more than LEAF_MAX points, a new internal node for one bucket.

        ``slot_gen`` is the generation the parent slot had before this write. A new node's empty slots
        inherit it: their buckets hold no points now and held none since then (a leaf being split had
        none there either), so Changes still sees deletions that happened before the node was created.
        """
        if t.size <= LEAF_MAX or not can_split(parent_pw):
            return self._write_leaf(t, v)
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
        starts = [0, *edges.tolist()]
        stops = [*edges.tolist(), int(t.size)]
        changed = node is None
        for lo, hi in zip(starts, stops, strict=True):
            i = int(buckets[lo])
            child_start = start + (i << pw)
            sub_t, sub_v = t[lo:hi], v[lo:hi]
            addr = int(new.addr[i])
            if addr == 0:
                summary: Summary | None = self._new_subtree(pw, child_start, sub_t, sub_v, int(new.gen[i]))
            elif new.leaf[i]:
                summary = self._insert_leaf(addr, pw, child_start, sub_t, sub_v, policy, int(new.gen[i]))
            else:
                child = self.reader.node(addr)
                summary = self._insert_node(child, pw - PW_STEP, child_start, sub_t, sub_v, policy)
            if summary is not None:
                new.set_slot(i, summary, self.gen)
                changed = True
        if not changed:
            return None
        return self._write_node(new, force=force)

    def _insert_leaf(
        self,
        addr: int,
        parent_pw: int,
        start: int,
        t: np.ndarray,
        v: np.ndarray,
        policy: MergePolicy,
        slot_gen: int,
    ) -> Summary | None:
        old_t, old_v = self.reader.leaf(addr)
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
        for i in np.flatnonzero(node.addr[first : last + 1]).tolist():
            i += first
            bs = start + i * width
            addr = int(node.addr[i])
            if lo <= bs and bs + width <= hi:
                summary: Summary | None = EMPTY
            elif node.leaf[i]:
                lt, lv = self.reader.leaf(addr)
                a, b = np.searchsorted(lt, [lo, hi])
                if a == b:
                    summary = None
                else:
                    keep_t = np.concatenate((lt[:a], lt[b:]))
                    keep_v = np.concatenate((lv[:a], lv[b:]))
                    summary = self._write_leaf(keep_t, keep_v)
            else:
                child = self.reader.node(addr)
                summary = self._delete_node(child, pw - PW_STEP, bs, lo, hi)
            if summary is not None:
                if new is None:
                    new = node.copy()
                new.set_slot(i, summary, self.gen)
        if new is None:
            return None
        return self._write_node(new, force=force)
