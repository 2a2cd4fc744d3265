"""Dropping old versions: which blocks the kept versions still reach, and which can be freed.

Versions share blocks (copy on write), so a block may be freed only when no kept version reaches it.
The walk starts at the roots of every kept version and goes down level by level, reading each
level's unseen nodes in one batch; shared subtrees are visited once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pingthings.server.engine.node import KIND_NODE, decode_node
from pingthings.server.engine.store import BlockStore


@dataclass(frozen=True)
class CompactResult:
    """What compacting one stream did.

    Attributes
    ----------
    uuid
        The stream.
    kept_from
        Oldest version kept (the one current at the cut-off time); 0 when the stream is newer than it.
    versions_dropped
        Versions removed.
    blocks_freed, bytes_freed
        Blocks no kept version reaches, deleted, and their encoded size.
    """

    uuid: bytes
    kept_from: int
    versions_dropped: int
    blocks_freed: int
    bytes_freed: int


def reachable_blocks(store: BlockStore, roots: Iterable[int]) -> set[int]:
    """Addresses of every block reachable from ``roots`` (internal nodes, leaves and leaf groups)."""
    seen: set[int] = set()
    level = sorted({int(r) for r in roots if r})
    while level:
        seen.update(level)
        blocks = store.read_blocks(level)
        children: set[int] = set()
        for addr in level:
            block = blocks.get(addr)
            if block is None or block[0] != KIND_NODE:
                continue  # a leaf (or leaf group) reached as a child has no children
            node = decode_node(block)
            used = node.addr != 0
            leaves = node.addr[used & node.leaf]
            seen.update(int(a) for a in np.unique(leaves))
            children.update(int(a) for a in node.addr[used & ~node.leaf])
        level = sorted(children - seen)
    return seen
