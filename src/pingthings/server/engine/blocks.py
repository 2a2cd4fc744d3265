"""Decoded-block access with a small LRU cache in front of the SQLite store.

Blocks are immutable and addresses are never reused while a process runs (stream numbers only grow), so a
cached block can never go stale. Internal nodes are cached by count, point blocks by number of points.

A leaf is named by a *leaf reference*: the address its parent slot holds and the slot's number. The block
at that address is either a plain leaf (all its points belong to the slot) or a leaf group holding the
small leaves of several slots of one node (see :mod:`.leaf_codec`); the slot number picks the leaf's part.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from pingthings.server.engine.leaf_codec import LeafView, decode_views
from pingthings.server.engine.node import Node, decode_node
from pingthings.server.engine.store import BlockStore

Leaf = tuple[np.ndarray, np.ndarray]


class MissingBlock(Exception):
    """A block address that is not in the store (its stream was obliterated meanwhile)."""


class PointBlock:
    """A decoded leaf or leaf-group block: all its points and, for a group, the slot bounds."""

    __slots__ = ("bounds", "t", "v")

    def __init__(self, t: np.ndarray, v: np.ndarray, bounds: np.ndarray | None) -> None:
        self.t = t
        self.v = v
        self.bounds = bounds

    def leaf(self, slot: int) -> Leaf:
        """The points of the leaf in slot ``slot``."""
        if self.bounds is None:
            return self.t, self.v
        a, b = int(self.bounds[slot]), int(self.bounds[slot + 1])
        return self.t[a:b], self.v[a:b]


class _LRU:
    """A thread-safe LRU map bounded by a total weight."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.weight = 0
        self._items: OrderedDict[int, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: int) -> object | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: int, value: object, weight: int) -> None:
        if weight > self.capacity:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self._items[key] = (value, weight)
            self.weight += weight
            while self.weight > self.capacity and self._items:
                _, (_, w) = self._items.popitem(last=False)
                self.weight -= w


def _runs(addrs: np.ndarray) -> np.ndarray:
    """Start indices of the runs of equal consecutive addresses, with ``addrs.size`` appended."""
    if addrs.size == 0:
        return np.zeros(1, dtype=np.int64)
    edges = np.flatnonzero(addrs[1:] != addrs[:-1]) + 1
    return np.concatenate(([0], edges, [addrs.size])).astype(np.int64)


class BlockReader:
    """Fetch and decode tree blocks, one at a time or many per SQL query.

    Parameters
    ----------
    store
        The SQLite block store.
    node_cache
        How many decoded internal nodes to keep.
    leaf_cache_points
        How many points' worth of decoded point blocks to keep.
    """

    def __init__(
        self, store: BlockStore, node_cache: int = 16384, leaf_cache_points: int = 4_000_000
    ) -> None:
        self.store = store
        self._nodes = _LRU(node_cache)
        self._leaves = _LRU(leaf_cache_points)

    def remember_node(self, addr: int, node: Node) -> None:
        """Put a freshly committed node into the cache."""
        self._nodes.put(addr, node, 1)

    def remember_points(self, addr: int, block: PointBlock) -> None:
        """Put a freshly committed leaf or group into the cache."""
        block.t.setflags(write=False)
        block.v.setflags(write=False)
        self._leaves.put(addr, block, max(1, int(block.t.size)))

    def node(self, addr: int) -> Node:
        """One internal node."""
        return self.nodes([addr])[0]

    def nodes(self, addrs: Sequence[int]) -> list[Node]:
        """Internal nodes for ``addrs``, in the same order."""
        out: list[Node | None] = [self._nodes.get(a) for a in addrs]  # type: ignore[misc]
        missing = [a for a, n in zip(addrs, out, strict=True) if n is None]
        if missing:
            raw = self.store.read_blocks(missing)
            for i, a in enumerate(addrs):
                if out[i] is None:
                    data = raw.get(a)
                    if data is None:
                        raise MissingBlock(a)
                    node = decode_node(data)
                    self._nodes.put(a, node, 1)
                    out[i] = node
        return out  # type: ignore[return-value]

    def point_blocks(self, addrs: Sequence[int], cache: bool = True) -> dict[int, PointBlock]:
        """Decoded leaf or group blocks by address (one SQL query and one decode for the missing ones)."""
        out: dict[int, PointBlock] = {}
        missing: list[int] = []
        for a in addrs:
            if a in out:
                continue
            hit = self._leaves.get(a)
            if hit is None:
                missing.append(a)
            else:
                out[a] = hit  # type: ignore[assignment]
        if not missing:
            return out
        raw = self.store.read_blocks(missing)
        try:
            views = [LeafView(raw[a]) for a in missing]
        except KeyError as exc:
            raise MissingBlock(exc.args[0]) from None
        t, v = decode_views(views)
        t.setflags(write=False)
        v.setflags(write=False)
        pos = 0
        for a, view in zip(missing, views, strict=True):
            block = PointBlock(t[pos : pos + view.size], v[pos : pos + view.size], view.bounds)
            pos += view.size
            if cache:
                self._leaves.put(a, block, max(1, view.size))
            out[a] = block
        return out

    def leaf(self, addr: int, slot: int) -> Leaf:
        """The ``(times, values)`` of the leaf in slot ``slot`` whose slot address is ``addr``."""
        return self.point_blocks([addr])[addr].leaf(slot)

    def _batches(self, addrs: np.ndarray, batch: int) -> Iterator[tuple[int, int, list[int]]]:
        """``(first ref, end ref, block addresses)`` for groups of about ``batch`` blocks of ref runs."""
        runs = _runs(addrs)
        for r in range(0, runs.size - 1, batch):
            r_end = min(r + batch, runs.size - 1)
            yield int(runs[r]), int(runs[r_end]), addrs[runs[r:r_end]].tolist()

    def _decode_refs(
        self,
        addrs: np.ndarray,
        slots: np.ndarray,
        counts: np.ndarray,
        blocks: list[int],
        out: tuple[np.ndarray, np.ndarray] | None,
    ) -> Leaf:
        """Points of consecutive leaf references (runs of equal address, one run per entry of ``blocks``)."""
        raw = self.store.read_blocks(blocks)
        try:
            views = [LeafView(raw[a]) for a in blocks]
        except KeyError as exc:
            raise MissingBlock(exc.args[0]) from None
        want = int(counts.sum())
        if sum(x.size for x in views) == want:
            # Every block is wanted whole (the usual case: consecutive references cover each block).
            return decode_views(views, out)
        t, v = decode_views(views)
        # Gather: each reference's points start at its block's offset plus its slot's bound.
        sizes = np.array([x.size for x in views], dtype=np.int64)
        block_first = np.zeros(sizes.size, dtype=np.int64)
        np.cumsum(sizes[:-1], out=block_first[1:])
        run_of = np.cumsum(np.concatenate(([0], addrs[1:] != addrs[:-1]))).astype(np.int64)
        first = block_first[run_of]
        grouped = [i for i, x in enumerate(views) if x.bounds is not None]
        if grouped:
            bounds = np.zeros((sizes.size, 65), dtype=np.int64)
            for i in grouped:
                bounds[i] = views[i].bounds  # type: ignore[assignment]
            first = first + bounds[run_of, slots]
        ref_first = np.zeros(counts.size, dtype=np.int64)
        np.cumsum(counts[:-1], out=ref_first[1:])
        idx = np.repeat(first - ref_first, counts) + np.arange(want, dtype=np.int64)
        if out is None:
            return t[idx], v[idx]
        np.take(t, idx, out=out[0])
        np.take(v, idx, out=out[1])
        return out

    def scan(
        self, addrs: np.ndarray, slots: np.ndarray, counts: np.ndarray, batch: int = 128
    ) -> Iterator[Leaf]:
        """Concatenated ``(times, values)`` of consecutive groups of leaf references, in order.

        ``addrs``, ``slots`` and ``counts`` (int64 arrays) describe the leaves in time order. Long reads go
        through here: one SQL query and one vectorised decode per ~``batch`` blocks, no caching. Groups of
        ~128 blocks keep the temporary arrays small enough to be recycled by the allocator.
        """
        for lo, hi, blocks in self._batches(addrs, batch):
            yield self._decode_refs(addrs[lo:hi], slots[lo:hi], counts[lo:hi], blocks, None)

    def read_into(
        self, addrs: np.ndarray, slots: np.ndarray, counts: np.ndarray, batch: int = 128
    ) -> Leaf:
        """Decode leaves (described as for :meth:`scan`) straight into two preallocated arrays."""
        total = int(counts.sum())
        out_t = np.empty(total, dtype=np.int64)
        out_v = np.empty(total, dtype=np.float64)
        pos = 0
        for lo, hi, blocks in self._batches(addrs, batch):
            size = int(counts[lo:hi].sum())
            part = (out_t[pos : pos + size], out_v[pos : pos + size])
            self._decode_refs(addrs[lo:hi], slots[lo:hi], counts[lo:hi], blocks, part)
            pos += size
        return out_t, out_v
