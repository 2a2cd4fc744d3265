"""pco leaf bodies (block format 5): bit-exact round trips, batches that mix them with byte-plane
leaves, and what the encoder picks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pingthings.wire.blocks.codec import pack
from pingthings.wire.blocks.leaf_codec import (
    _HEADER,
    KIND_LEAF,
    PCO_MIN_POINTS,
    LeafView,
    decode_leaves,
    decode_views,
    encode_group,
    encode_leaf,
)
from pingthings.wire.blocks.pco_leaf import FLAG_PCO, encode_body

T0 = 1_700_000_000_000_000_000


def _is_pco(block: bytes) -> bool:
    return bool(LeafView(block).body[1] & FLAG_PCO)


def _pco_block(times: np.ndarray, values: np.ndarray) -> bytes:
    """The pco leaf block of the points, whichever layout the encoder would have kept."""
    return pack(KIND_LEAF, encode_body(_HEADER, KIND_LEAF, times, values), compress=False)


def _same(got: tuple[np.ndarray, np.ndarray], times: np.ndarray, values: np.ndarray) -> None:
    np.testing.assert_array_equal(got[0], times)
    np.testing.assert_array_equal(got[1].view(np.uint64), values.view(np.uint64))  # bit for bit


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(PCO_MIN_POINTS, 3000),
    seed=st.integers(0, 2**32 - 1),
    specials=st.lists(
        st.sampled_from([0x7FF8000000000001, 0xFFF0000000000123, 0x8000000000000000, 0x7FF0000000000000]),
        max_size=20,
    ),
    spread=st.sampled_from([1, 1000, 8_333_333, 1 << 40]),
)
def test_any_bits_round_trip(n: int, seed: int, specials: list[int], spread: int) -> None:
    rng = np.random.default_rng(seed)
    times = np.sort(T0 + rng.integers(-spread, spread, n) * rng.integers(1, 4))
    values = np.round(rng.normal(7200, 1, n), int(rng.integers(0, 6)))
    bits = values.view(np.uint64)
    for k, special in enumerate(specials):  # NaN payloads, a signalling NaN, -0.0, inf
        bits[(k * 7919) % n] = special
    block = _pco_block(times, values)
    _same(decode_leaves([block]), times, values)
    chosen = encode_leaf(times, values)  # pco, or byte planes where those are smaller
    assert len(chosen) <= len(block)
    _same(decode_leaves([chosen, block]), np.tile(times, 2), np.tile(values, 2))


def test_extreme_times_and_values_round_trip() -> None:
    n = 200
    times = np.sort(np.concatenate([[-(1 << 60), (3 << 60) - 1], T0 + np.arange(n - 2) * 3]))
    values = np.concatenate([[np.finfo(float).max, -np.finfo(float).tiny], np.linspace(-1, 1, n - 2)])
    block = encode_leaf(times, values)
    assert _is_pco(block)
    _same(decode_leaves([block]), times, values)


def test_batches_mix_pco_and_byte_plane_leaves_and_groups() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    times = T0 + np.arange(n, dtype=np.int64) * 8_333_333 + rng.integers(-2000, 2001, n)
    values = np.round(rng.normal(60, 0.01, n), 3)
    cuts = [0, 300, 310, 1000, 1700, 2200, 3000]  # a 10-point leaf stays in byte planes
    blocks = []
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        if k == 4:
            blocks.append(
                encode_group(np.array([2, 5]), np.array([200, b - a - 200]), times[a:b], values[a:b])
            )
        else:
            blocks.append(encode_leaf(times[a:b], values[a:b], planes=k == 2))
    assert [_is_pco(b) for b in blocks] == [True, False, False, True, True, True]
    _same(decode_leaves(blocks), times, values)
    out = (np.empty(n, np.int64), np.empty(n, np.float64))
    got = decode_views([LeafView(b) for b in blocks], out)
    assert got[0] is out[0] and got[1] is out[1]
    _same(out, times, values)


def test_the_smaller_layout_is_kept() -> None:
    rng = np.random.default_rng(5)
    times = T0 + np.arange(6400, dtype=np.int64) * 8_333_333
    structured = np.round(7200 + np.sin(np.arange(6400) / 40) + rng.normal(0, 0.05, 6400), 3)
    noise = rng.random(6400)  # incompressible doubles: pco is poor there, so both are tried
    chosen = encode_leaf(times, structured)
    assert _is_pco(chosen) and len(chosen) < 6.5 * times.size
    _same(decode_leaves([chosen]), times, structured)
    chosen = encode_leaf(times, noise)
    assert len(chosen) == min(len(encode_leaf(times, noise, planes=True)), len(_pco_block(times, noise)))
    _same(decode_leaves([chosen]), times, noise)


@pytest.mark.parametrize("rate", [960, 120, 3])
def test_exact_grids_store_the_grid_not_the_times(rate: int) -> None:
    # 960 Hz is 1,041,666.67 ns apart: pco codes such times in ~0.33 bytes a point, the grid in none.
    n = 5000
    times = T0 + (np.arange(n, dtype=np.int64) * 1_000_000_000) // rate
    values = np.round(np.sin(np.arange(n) / 7) * 20000) * 0.0123
    block = encode_leaf(times, values)
    body = LeafView(block).body
    assert body[1] == FLAG_PCO | 4  # pco values, grid times
    assert len(block) < len(_pco_block(times[:-1] + np.int64(0), values[:-1])) + 64  # no times chunk
    _same(decode_leaves([block]), times, values)
    jittered = times + np.random.default_rng(rate).integers(-2000, 2001, n)
    assert LeafView(encode_leaf(np.sort(jittered), values)).body[1] == FLAG_PCO  # a pco times chunk


def test_grids_at_the_ends_of_the_time_range_round_trip() -> None:
    for start, period in ((-(1 << 60), 1 << 40), ((3 << 60) - 1 - 199 * 3, 3), (0, 1)):
        times = start + np.arange(200, dtype=np.int64) * period
        values = np.arange(200, dtype=np.float64)
        block = encode_leaf(times, values)
        assert LeafView(block).body[1] == FLAG_PCO | 4
        _same(decode_leaves([block]), times, values)
