"""Grid-coded time stamps (block format 4): exact round trips, the size they save, older blocks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pingthings.wire.blocks.leaf_codec import KIND_GROUP, LeafView, decode_leaves, decode_views, encode_leaf
from pingthings.wire.blocks.time_grid import MAX_BITS

T0 = 1_700_000_000_000_000_000
FLAG_GRID = 4

#: Written by the codec of block format 3 (delta-of-delta times), before grid-coded times existed.
#: A leaf: 60 points at 120 Hz with ±2 us of jitter in ns, values to 3 decimals (see ``format3_leaf``).
FORMAT3_LEAF = bytes.fromhex(
    "01015801000004224d18604082a1000000f203010202033c00000030f82936fe9c9717010001003263377f09001203070004"
    "0200144109000f020013164230001f1f320013040200171f3000f4308e7c6030f8b66a1e3381c9093d69838d8b755121e59f"
    "53034a98dc1c4c748890866c4612d28a3e135fabf12959798b8d7f6337ffbd73252a78c002ba010101d400000b0001020003"
    "6400010c000002000b1000040f0013db09000f02001c50000000000000000000"
)
#: A group of two leaves (slots 5 and 9, 25 + 35 points): 120 Hz on whole microseconds, float32 values.
FORMAT3_GROUP = bytes.fromhex(
    "03016201000004224d18604082bc000000310302000100a1190000002300000005090f00f20400010101043c00000030f829"
    "36fe9c9717e8031800228f200800ff00020b0a0708000708090c01090c0b0a0f0018f03f003ca892186061f9410d4df915c1"
    "1da454c4c8462e885ed61ca13167214bdde985dbe890f2e44c2060289827e1678d2f45c1b949972acc1efe4e0c3800050403"
    "02000102040505040402010002030a00420301000109002f0200130000300102041d0012c2b9000f0200221f8b3600226000"
    "000000000000000000"
)


def format3_leaf() -> tuple[np.ndarray, np.ndarray]:
    """The points of FORMAT3_LEAF."""
    i = np.arange(60)
    t = T0 + i.astype(np.int64) * 8_333_333 + (i * 7919 % 4001 - 2000)
    return t, np.round(7200 + np.sin(i / 5.0), 3)


def format3_group() -> tuple[np.ndarray, np.ndarray]:
    """The points of FORMAT3_GROUP."""
    i = np.arange(60)
    t = T0 + ((i * 1_000_000 + 60) // 120 + (i * 37 % 5 - 2)) * 1000
    return t, (7200 + np.sin(i / 3.0)).astype(np.float32).astype(np.float64)


def flags(block: bytes) -> int:
    return int(LeafView(block).body[1])


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1].view(np.uint64), want[1].view(np.uint64))


def test_format_3_blocks_still_decode_alone_and_with_grid_leaves() -> None:
    assert FORMAT3_GROUP[0] == KIND_GROUP and not flags(FORMAT3_LEAF) & FLAG_GRID
    assert_same(decode_leaves([FORMAT3_LEAF]), format3_leaf())
    assert_same(decode_leaves([FORMAT3_GROUP]), format3_group())
    # The same points written now (the microsecond ones grid-coded): a batch mixing both decodes.
    new = [encode_leaf(*format3_leaf()), encode_leaf(*format3_group())]
    assert flags(new[1]) & FLAG_GRID
    parts = [format3_leaf(), format3_group(), format3_leaf(), format3_group()]
    want = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    assert_same(decode_leaves([FORMAT3_LEAF, new[1], new[0], FORMAT3_GROUP]), want)


def test_jittered_times_cost_less_than_delta_of_delta() -> None:
    # 120 Hz with uniform ±2 us jitter on nanosecond stamps: 12 bits a point against the grid, 16 as
    # delta-of-delta byte planes (format 3 bodies hold 2 planes of n - 2 bytes).
    rng = np.random.default_rng(13)
    n = 4096
    t = T0 + (np.arange(n, dtype=np.int64) * 10**9) // 120 + rng.integers(-2000, 2001, n)
    v = np.zeros(n)
    for cut in (515, 1024):  # shorter leaves too: the fit must not widen the residuals past 12 bits
        short = encode_leaf(t[:cut], v[:cut], planes=True)
        assert flags(short) & FLAG_GRID and len(LeafView(short).body) <= 32 + 16 + cut * 3 // 2 + 1 + cut
    block = encode_leaf(t, v, planes=True)
    assert flags(block) & FLAG_GRID
    body = LeafView(block).body  # header, grid extension, times, one byte plane of zero value deltas
    assert len(body) <= 32 + 16 + n * 3 // 2 + n < 32 + 2 * (n - 2) + n
    assert_same(decode_leaves([block]), (t, v))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(3, 3000),
    period=st.integers(1, 10**12),
    jitter=st.integers(0, 1 << 20),
    unit=st.sampled_from([1, 1000, 10**6]),
    start=st.integers(-(1 << 60), 1 << 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_grid_coding_round_trips(n: int, period: int, jitter: int, unit: int, start: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    i = np.arange(n, dtype=np.int64)
    t = start + (i * period + rng.integers(-jitter, jitter + 1, n)) * unit
    t = np.sort(t[(t >= -(1 << 60)) & (t < 3 << 60)])
    if t.size == 0:
        return
    v = rng.normal(size=t.size)
    block = encode_leaf(t, v)
    assert_same(decode_leaves([block, block]), (np.tile(t, 2), np.tile(v, 2)))


def test_times_far_from_any_grid_fall_back_to_delta_of_delta() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.integers(-(1 << 60), 3 << 60, 500))  # no grid within MAX_BITS of them
    assert (3 << 60) >> MAX_BITS > 1 << 20
    block = encode_leaf(t, np.zeros(t.size))
    assert not flags(block) & FLAG_GRID
    assert_same(decode_leaves([block]), (t, np.zeros(t.size)))


def test_mixed_batches_decode_into_given_arrays() -> None:
    # Grid and delta-of-delta leaves of different steps in one batch, decoded into preallocated arrays
    # (the path of Engine.raw_values).
    rng = np.random.default_rng(8)
    blocks, times, values = [], [], []
    for k in range(12):
        n = int(rng.integers(3, 900))
        if k % 3:
            t = T0 + k * 10**13 + np.arange(n, dtype=np.int64) * 8_333_333 + rng.integers(-2000, 2001, n)
        else:
            t = T0 + k * 10**13 + np.sort(rng.integers(0, 10**12, n))
        t = np.unique(t)
        v = rng.normal(size=t.size)
        blocks.append(encode_leaf(t, v))
        times.append(t)
        values.append(v)
    assert {flags(b) & FLAG_GRID for b in blocks} == {0, FLAG_GRID}
    want = (np.concatenate(times), np.concatenate(values))
    out = (np.empty(want[0].size, dtype=np.int64), np.empty(want[0].size))
    got = decode_views([LeafView(b) for b in blocks], out)
    assert got[0] is out[0] and got[1] is out[1]
    assert_same(out, want)
