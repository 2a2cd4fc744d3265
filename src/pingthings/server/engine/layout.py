"""Fixed, absolute bucket geometry of the per-stream tree.

The root node covers ``[ROOT_START, ROOT_START + 64 * 2**ROOT_PW)`` = ``[-2**60, 3 * 2**60)`` ns in 64
buckets of ``2**56`` ns. Every level below divides a bucket by 64, so internal nodes have point widths
56, 50, 44, ..., 8, 2 (the point width of a node is log2 of the width of one of its buckets). A bucket of
a pw-``p`` node starts at a multiple of ``2**p``. Leaves hold up to ``LEAF_MAX`` sorted points of one
bucket; a leaf that would grow past that is split into an internal node one level down, except under a
pw-2 node, where no finer level exists and the leaf may grow without bound.
"""

from __future__ import annotations

from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

#: Children per internal node.
FANOUT: int = 64
#: log2(FANOUT): point-width step between levels.
PW_STEP: int = 6
#: Point width of the root node's buckets.
ROOT_PW: int = 56
#: Start of the root node's first bucket (= MIN_TIME).
ROOT_START: int = -(1 << 60)
#: Smallest point width an internal node can have.
MIN_NODE_PW: int = 2
#: Largest number of points a leaf holds when its bucket can still be split.
LEAF_MAX: int = 1024

assert ROOT_START == MIN_TIME
assert ROOT_START + FANOUT * (1 << ROOT_PW) == TIME_LIMIT


def child_pw(pw: int) -> int:
    """Point width of an internal node that sits in a bucket of a pw-``pw`` node."""
    return pw - PW_STEP


def can_split(pw: int) -> bool:
    """Whether a leaf in a bucket of a pw-``pw`` node may be turned into an internal node."""
    return pw - PW_STEP >= MIN_NODE_PW


def node_span(pw: int) -> int:
    """Width in ns covered by a whole pw-``pw`` internal node."""
    return FANOUT << pw
