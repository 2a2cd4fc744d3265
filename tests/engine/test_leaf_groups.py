"""Leaf groups: the small leaves of one node stored as one block, invisible in every query result.

The logical tree keeps its shape (fixed buckets, 64 slots, at most LEAF_MAX points per leaf); these tests
pin the physical layout (dense data really is grouped, regrouping keeps slot generations) and the codec.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pingthings.server.engine import Engine
from pingthings.server.engine.blocks import BlockReader
from pingthings.server.engine.layout import LEAF_MAX, PW_STEP, ROOT_PW, ROOT_START
from pingthings.server.engine.store import FORMAT_VERSION
from pingthings.server.engine.tree import BULK_LEAF, GROUP_POINTS, SMALL_LEAF
from pingthings.wire.blocks.leaf_codec import (
    KIND_GROUP,
    KIND_LEAF,
    LeafView,
    decode_views,
    encode_group,
    encode_leaf,
)
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

T0 = 1_700_000_000 * 10**9
RATE_240 = 4_166_667  # ns between frames at 240 Hz: a pw-32 bucket holds ~1030 points


def walk_leaves(reader: BlockReader, root: int) -> list[tuple[int, int, int, int]]:
    """``(bucket start, address, slot, count)`` of every leaf slot of a tree, in time order."""
    out = []
    stack = [(root, ROOT_PW, ROOT_START)]
    while stack:
        addr, pw, start = stack.pop()
        node = reader.node(addr)
        for i in np.flatnonzero(node.addr).tolist():
            bs = start + (i << pw)
            if node.leaf[i]:
                out.append((bs, int(node.addr[i]), i, int(node.count[i])))
            else:
                stack.append((int(node.addr[i]), pw - PW_STEP, bs))
    return sorted(out)


def block_kinds(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM blocks").fetchall()
    conn.close()
    return [bytes(r[0])[0] for r in rows]


def check_layout(engine: Engine, sid: bytes, t: np.ndarray, v: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Every leaf slot reads back its own points, holds at most LEAF_MAX, and slot counts add up."""
    reader = engine._reader
    leaves = walk_leaves(reader, engine._stream(sid).state[1])
    pos = 0
    for _, addr, slot, count in leaves:
        lt, lv = reader.leaf(addr, slot)
        assert lt.size == count <= LEAF_MAX
        np.testing.assert_array_equal(lt, t[pos : pos + count])
        np.testing.assert_array_equal(lv, v[pos : pos + count])
        pos += count
    assert pos == t.size
    return leaves


def test_240hz_leaves_keep_their_shape_but_share_blocks(tmp_path: Path) -> None:
    db = tmp_path / "e.sqlite3"
    sid = uuid.uuid4().bytes
    n = 40_000
    t = T0 + np.arange(n, dtype=np.int64) * RATE_240
    v = np.random.default_rng(1).normal(60, 1, n)
    with Engine(db) as eng:
        eng.create_stream(sid)
        for i in range(0, n, 7_000):  # batch edges cut buckets: the edge nodes get regrouped
            eng.insert(sid, t[i : i + 7_000], v[i : i + 7_000])
        leaves = check_layout(eng, sid, t, v)
        # The logical shape is the spec's: ~1030-point pw-32 buckets split into leaves of ~16 points
        # (only the partly filled first and last buckets stay single leaves).
        assert sum(c > 17 for *_, c in leaves) <= 2 and len(leaves) > n // 17
        # Physically, every node's leaves share one block: one address per ~1030 points.
        addrs = {a for _, a, _, _ in leaves}
        assert len(addrs) <= n // 1000 + 2
        _, got_t, got_v = eng.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)
        np.testing.assert_array_equal(got_t, t)
        np.testing.assert_array_equal(got_v, v)
    kinds = block_kinds(db)
    assert kinds.count(KIND_GROUP) >= n // 1100
    assert kinds.count(KIND_LEAF) < kinds.count(KIND_GROUP) // 4


def test_small_inserts_end_up_grouped(engine: Engine, stream: bytes) -> None:
    # One second of 240 Hz data per insert: each insert regroups the node it lands in.
    n = 240 * 30
    t = T0 + np.arange(n, dtype=np.int64) * RATE_240
    v = np.arange(n, dtype=np.float64)
    for i in range(0, n, 240):
        engine.insert(stream, t[i : i + 240], v[i : i + 240])
    small = [x for x in check_layout(engine, stream, t, v) if x[3] < SMALL_LEAF]
    assert len(small) > 5 * 64, "split buckets hold leaves of ~16 points"
    parents = {bs >> 32 for bs, *_ in small}  # the pw-32 bucket (parent node) of each small leaf
    assert len({a for _, a, _, _ in small}) == len(parents), "one block per node's small leaves"


def test_big_nodes_are_cut_into_groups(engine: Engine, stream: bytes) -> None:
    # 5 us spacing: leaves of ~210 points (small), 64 of them per node: more than GROUP_POINTS per node.
    n = 30_000
    t = T0 + np.arange(n, dtype=np.int64) * 5000
    v = np.arange(n, dtype=np.float64)
    engine.insert(stream, t, v)
    leaves = check_layout(engine, stream, t, v)
    per_block: dict[int, int] = {}
    for _, a, _, c in leaves:
        per_block[a] = per_block.get(a, 0) + c
    assert max(c for *_, c in leaves) < SMALL_LEAF
    assert max(per_block.values()) <= GROUP_POINTS < max(per_block.values()) + SMALL_LEAF * 2


def test_bulk_leaves_are_grouped_and_a_tail_leaf_is_written_alone(engine: Engine, stream: bytes) -> None:
    # 120 Hz in one write: leaves of ~515 points (more than SMALL_LEAF, fewer than BULK_LEAF) are grouped.
    t = T0 + np.arange(40_000, dtype=np.int64) * 8_333_333
    engine.insert(stream, t, np.arange(t.size, dtype=np.float64))
    leaves = check_layout(engine, stream, t, np.arange(t.size, dtype=np.float64))
    assert min(c for *_, c in leaves) > SMALL_LEAF and max(c for *_, c in leaves) < BULK_LEAF
    per_block: dict[int, int] = {}
    for _, a, _, c in leaves:
        per_block[a] = per_block.get(a, 0) + c
    assert len(per_block) * 8 < len(leaves), "about GROUP_POINTS points a block"
    assert max(per_block.values()) <= GROUP_POINTS
    # One more second at the tail: only the leaves it lands in (the tail one, maybe the next) are
    # rewritten; every other leaf stays in its group.
    more = t[-1] + np.arange(1, 121, dtype=np.int64) * 8_333_333
    engine.insert(stream, more, np.ones(more.size))
    after = walk_leaves(engine._reader, engine._stream(stream).state[1])
    moved = [i for i, (_, a, _, _) in enumerate(after) if a not in per_block]
    assert 1 <= len(moved) <= 2 and moved == list(range(len(after) - len(moved), len(after)))
    assert int(engine.count(stream)[1]) == t.size + more.size


def test_regrouping_keeps_the_generation_of_untouched_leaves(engine: Engine, stream: bytes) -> None:
    # The first half of a pw-32 bucket, then the second half: the second insert rewrites the group
    # holding the first half's leaves, but Changes must still report only the second half.
    bucket = (T0 >> 32 << 32) + (1 << 32)
    t = bucket + np.arange(1030, dtype=np.int64) * RATE_240
    v1 = engine.insert(stream, t, np.ones(t.size))  # splits into a node of 16-point leaves
    later = bucket + (1 << 31) + np.arange(100, dtype=np.int64) * RATE_240 + 1
    v2 = engine.insert(stream, later, np.ones(later.size))
    leaves = check_layout(engine, stream, np.sort(np.concatenate((t, later))), np.ones(t.size + later.size))
    assert len({a for _, a, _, _ in leaves}) == 1, "the node's leaves were regrouped into one block"
    _, starts, ends = engine.changes(stream, v1, v2, 26)
    assert starts.size and int(starts[0]) >= bucket + (1 << 31) - (1 << 26)
    assert int(ends[-1]) <= bucket + (1 << 32)


def test_reopened_format_1_database_is_restamped(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    sid = uuid.uuid4().bytes
    with Engine(path) as eng:
        eng.create_stream(sid)
        eng.insert(sid, np.arange(10, dtype=np.int64), np.ones(10))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE engine_meta SET value = 1 WHERE key = 'format'")
    conn.close()
    with Engine(path) as eng:
        assert eng.count(sid)[1] == 10
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT value FROM engine_meta WHERE key = 'format'").fetchone()[0]
        assert found == FORMAT_VERSION
    conn.close()


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=2, max_size=64),
    seed=st.integers(0, 2**32 - 1),
    f32=st.booleans(),
)
def test_group_codec_round_trips(sizes: list[int], seed: int, f32: bool) -> None:
    rng = np.random.default_rng(seed)
    slots = np.sort(rng.choice(64, size=len(sizes), replace=False)).astype(np.int64)
    counts = np.array(sizes, dtype=np.int64)
    t = np.sort(rng.integers(-(10**15), 10**15, int(counts.sum())))
    v = rng.normal(0, 1e3, t.size)
    if f32:
        v = v.astype(np.float32).astype(np.float64)
    plain = (np.arange(5, dtype=np.int64), np.arange(5.0))
    views = [LeafView(encode_leaf(*plain)), LeafView(encode_group(slots, counts, t, v))]
    assert views[0].bounds is None and views[1].size == t.size
    got_t, got_v = decode_views(views)
    np.testing.assert_array_equal(got_t, np.concatenate((plain[0], t)))
    np.testing.assert_array_equal(got_v.view(np.int64), np.concatenate((plain[1], v)).view(np.int64))
    bounds = views[1].bounds
    assert bounds is not None
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    np.testing.assert_array_equal(bounds[slots], first)
    np.testing.assert_array_equal(bounds[slots + 1], first + counts)
    assert bounds[64] == t.size


def test_node_layouts_round_trip() -> None:
    # Layout 2 (byte planes) is written now; layout 1 (plain arrays) is what format-1 files hold.
    import struct

    from pingthings.server.engine.node import KIND_NODE, Node, decode_node, encode_node
    from pingthings.wire.blocks.codec import pack

    rng = np.random.default_rng(9)
    node = Node()
    node.addr[:] = rng.integers(0, 2**62, 64)
    node.gen[:] = rng.integers(10, 10**6, 64)
    node.count[:] = rng.integers(0, 2000, 64)
    node.leaf[:] = rng.integers(0, 2, 64).astype(bool)
    for name in ("min", "max", "sum", "m2"):
        getattr(node, name)[:] = rng.normal(0, 1e9, 64)
    plain = struct.pack("<BB6x", KIND_NODE, 1) + b"".join(
        [
            np.concatenate((node.addr, node.gen, node.count)).tobytes(),
            np.concatenate((node.min, node.max, node.sum, node.m2)).tobytes(),
            node.leaf.tobytes(),
        ]
    )
    for block in (encode_node(node), pack(KIND_NODE, plain)):
        got = decode_node(block)
        for name in Node.__slots__:
            np.testing.assert_array_equal(getattr(got, name), getattr(node, name), err_msg=name)


def test_reads_skip_the_stale_points_of_a_group(engine: Engine, stream: bytes) -> None:
    # Two bulk writes: the first write's last leaf is rewritten by the second, so its old points stay
    # in the first group unreferenced; a deleted bucket in the middle of a group leaves a hole too.
    t = T0 + np.arange(60_000, dtype=np.int64) * 8_333_333
    v = np.arange(t.size, dtype=np.float64)
    engine.insert(stream, t[:25_000], v[:25_000])
    engine.insert(stream, t[25_000:], v[25_000:])
    hole = (int(t[10_000]) >> 32 << 32, (int(t[10_000]) >> 32 << 32) + (1 << 32))  # one pw-32 bucket
    engine.delete(stream, *hole)
    keep = (t < hole[0]) | (t >= hole[1])
    for _ in range(2):  # cold, then from the cache
        _, got_t, got_v = engine.raw_values(stream, t[0], t[-1] + 1)
        np.testing.assert_array_equal(got_t, t[keep])
        np.testing.assert_array_equal(got_v, v[keep])
        chunks = list(engine.iter_raw_values(stream, t[0], t[-1] + 1, chunk=7_000)[1])
        np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), t[keep])
