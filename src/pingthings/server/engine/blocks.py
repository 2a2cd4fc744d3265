"""Decoded-block access with a small LRU cache in front of the SQLite store.

Blocks are immutable and addresses are never reused while a process runs (stream numbers only grow), so a
cached block can never go stale. Internal nodes are cached by count, leaves by number of points.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from pingthings.server.engine.leaf_codec import decode_leaf, decode_leaves
from pingthings.server.engine.node import Node, decode_node
from pingthings.server.engine.store import BlockStore

Leaf = tuple[np.ndarray, np.ndarray]


class MissingBlock(Exception):
    """A block address that is not in the store (its stream was obliterated meanwhile)."""


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


class BlockReader:
    """Fetch and decode tree blocks, one at a time or many per SQL query.

    Parameters
    ----------
    store
        The SQLite block store.
    node_cache
        How many decoded internal nodes to keep.
    leaf_cache_points
        How many points' worth of decoded leaves to keep.
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

    def remember_leaf(self, addr: int, leaf: Leaf) -> None:
        """Put a freshly committed leaf into the cache."""
        self._leaves.put(addr, leaf, max(1, int(leaf[0].size)))

    def node(self, addr: int) -> Node:
        """One internal node."""
        return self.nodes([addr])[0]

    def leaf(self, addr: int) -> Leaf:
        """One leaf's ``(times, values)``."""
        return self.leaves([addr])[0]

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

    def leaves(self, addrs: Sequence[int], cache: bool = True) -> list[Leaf]:
        """Leaves for ``addrs``, in the same order; ``cache=False`` for long scans."""
        out: list[Leaf | None] = [self._leaves.get(a) for a in addrs]  # type: ignore[misc]
        missing = [a for a, leaf in zip(addrs, out, strict=True) if leaf is None]
        if missing:
            raw = self.store.read_blocks(missing)
            for i, a in enumerate(addrs):
                if out[i] is None:
                    data = raw.get(a)
                    if data is None:
                        raise MissingBlock(a)
                    leaf = decode_leaf(data)
                    leaf[0].setflags(write=False)
                    leaf[1].setflags(write=False)
                    if cache:
                        self._leaves.put(a, leaf, max(1, int(leaf[0].size)))
                    out[i] = leaf
        return out  # type: ignore[return-value]

    def scan(self, addrs: Sequence[int], batch: int = 128) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Concatenated ``(times, values)`` of consecutive groups of ``batch`` leaves, in order.

        Long reads go through here: one SQL query and one vectorised decode per group, no caching.
        Groups of ~128 leaves keep the temporary arrays small enough to be recycled by the allocator.
        """
        for i in range(0, len(addrs), batch):
            part = addrs[i : i + batch]
            raw = self.store.read_blocks(part)
            try:
                blocks = [raw[a] for a in part]
            except KeyError as exc:
                raise MissingBlock(exc.args[0]) from None
            yield decode_leaves(blocks)

    def read_into(
        self, addrs: Sequence[int], counts: Sequence[int], batch: int = 128
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode leaves whose point counts are known straight into two preallocated arrays."""
        total = int(sum(counts))
        out_t = np.empty(total, dtype=np.int64)
        out_v = np.empty(total, dtype=np.float64)
        pos = 0
        for i in range(0, len(addrs), batch):
            part = addrs[i : i + batch]
            size = int(sum(counts[i : i + batch]))
            raw = self.store.read_blocks(part)
            try:
                blocks = [raw[a] for a in part]
            except KeyError as exc:
                raise MissingBlock(exc.args[0]) from None
            decode_leaves(blocks, (out_t[pos : pos + size], out_v[pos : pos + size]))
            pos += size
        return out_t, out_v
