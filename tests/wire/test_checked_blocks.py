"""Checks of received blocks: every damaged block is refused with BadBlock or decodes without error.

Real blocks of every kind (plain and grouped leaves; delta-coded and grid-coded times; float32,
scaled-integer and float64 values; raw and LZ4 framing) are damaged at random (bytes changed, cut
short, grown) and must never make the checks or the decoder raise anything else (a block whose
structure is sound but whose numbers are damaged decodes to wrong numbers: nothing can tell).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pingthings.wire.blocks.checked import BadBlock, checked_view, declared_body_size
from pingthings.wire.blocks.leaf_codec import LeafView, decode_leaves, decode_views, encode_group, encode_leaf
from pingthings.wire.blocks.pco_leaf import FLAG_PCO

T0 = 1_700_000_000_000_000_000


def _blocks() -> list[bytes]:
    rng = np.random.default_rng(3)
    n = 700
    grid = T0 + np.arange(n, dtype=np.int64) * 8_333_333 + rng.integers(-2000, 2000, n)
    grid.sort()
    irregular = np.sort(T0 + rng.integers(0, 10**12, n))
    exact = T0 + (np.arange(n, dtype=np.int64) * 10**9) // 960  # pco blocks keep the grid alone
    f32 = rng.standard_normal(n).astype(np.float32).astype(np.float64)
    decimals = np.round(np.cumsum(rng.standard_normal(n)), 2)
    decimals[5] = np.nan
    doubles = rng.standard_normal(n) * 1e6
    out = [
        encode_leaf(t, v, planes=planes)
        for t in (grid, irregular, exact)
        for v in (f32, decimals, doubles)
        for planes in (False, True)
    ]
    for planes in (False, True):
        out.append(
            encode_group(np.array([3, 9, 10]), np.array([100, 250, 350]), grid, decimals, planes=planes)
        )
    out.append(encode_leaf(grid[:2], doubles[:2]))  # too small to compress: raw framing
    out.append(encode_leaf(grid[:0], doubles[:0]))
    return out


BLOCKS = _blocks()


def test_the_blocks_pass_and_decode_as_before() -> None:
    assert {b[1] for b in BLOCKS} == {0, 1}  # both framings are covered
    assert {bool(LeafView(b).body[1] & FLAG_PCO) for b in BLOCKS} == {False, True}  # both layouts
    for block in BLOCKS:
        view = checked_view(block)
        got = decode_views([view])
        want = decode_leaves([block])
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1].view(np.int64), want[1].view(np.int64))
        assert declared_body_size(block) >= 0


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    block = bytearray(draw(st.sampled_from(BLOCKS)))
    how = draw(st.sampled_from(["flip", "cut", "grow", "header"]))
    if how == "cut":
        return bytes(block[: draw(st.integers(0, max(0, len(block) - 1)))])
    if how == "grow":
        return bytes(block) + draw(st.binary(min_size=1, max_size=64))
    limit = 40 if how == "header" else len(block)
    for _ in range(draw(st.integers(1, 4))):
        if block:
            block[draw(st.integers(0, min(limit, len(block)) - 1))] = draw(st.integers(0, 255))
    return bytes(block)


@settings(max_examples=600, deadline=None)
@given(damaged())
def test_a_damaged_block_is_refused_or_decodes(block: bytes) -> None:
    try:
        view = checked_view(block)
    except BadBlock:
        return
    with np.errstate(all="ignore"):  # garbage numbers may overflow or be NaN (as the client decodes)
        try:
            t, v = decode_views([view])
        except ValueError as exc:  # pco chunks are checked as they decode, into arrays of n points
            assert view.body[1] & FLAG_PCO and "pco" in str(exc)
            return
    assert t.size == v.size == view.size


@pytest.mark.parametrize("block", [b"", b"\x01", b"\x01\x01\x00", b"\x07\x00" + bytes(40)])
def test_short_or_foreign_blocks_are_refused(block: bytes) -> None:
    with pytest.raises(BadBlock):
        checked_view(block)
