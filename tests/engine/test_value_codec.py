"""The decimal-aware value codec: exact round trips, the structures it must find, old blocks."""

from __future__ import annotations

import numpy as np
import pytest

from pingthings.wire.blocks.leaf_codec import decode_leaves, encode_leaf
from pingthings.wire.blocks.value_transform import MODE_DECIMAL, MODE_SCALED, find_integers

RNG = np.random.default_rng(2026)
N = 1024
TIMES = 1_700_000_000_000_000_000 + np.arange(N, dtype=np.int64) * 8_333_333 + RNG.integers(-2000, 2001, N)

#: Written by the codec before scaled integers existed (block format 2): 40 points of a 120 Hz stream
#: with jitter, values rounded to 3 decimals, as float64 and as float32.
OLD_F64 = bytes.fromhex(
    "0101ac01000004224d1860408212010000f203010002082800000030f82936fe9c9717010001003163377f0900114106000f02"
    "000d1f1f21000d020200f2b9ce7c30fc6ade60e2637bc9bb2125d9cd37b30bd5155bdb2fe8fe1e10461c0a6670be801a2ad8"
    "5a00f71408a9914fe57a3b14a174b031cef789c802a3ae8f24ddfbd48558b65aac663d9f6a2f5cce640053aeacf1ed8dd014"
    "dfae45937208f75341762b7047c20624a978eb39f3641c660a1abcdd8ff73b00e3471cd27c9722ae4f47b61868ac53e360be"
    "873de1f58106f1e951b4fd3b5a66d72f7424c253df0065615a4d3f2e1b070d213344515c6365655f564a3a28150112263848"
    "545f6466635d534635230f40ce000f02000e1f7822000e020200128107000f02000950000000000000000000"
)
OLD_F32 = bytes.fromhex(
    "01010c01000004224d186040827e000000f203010102042800000030f82936fe9c9717010001003163377f0900114106000f"
    "02000d1f1f21000d020200f01e300ad06efc76d83e69099d2189e5192f29fdb351d747ab079838c246a8fa22341eea9c30ae"
    "1a800003030202018a00600101020202030f000f10000112c256000f02000e1f8b22000e6000000000000000000000"
)


def old_points() -> tuple[np.ndarray, np.ndarray]:
    """The points OLD_F64 holds (OLD_F32 holds the values rounded to float32)."""
    i = np.arange(40)
    t = 1_700_000_000_000_000_000 + i.astype(np.int64) * 8_333_333 + (i * 7919 % 4001 - 2000)
    return t, np.round(7200 + np.sin(i / 5.0), 3)


def roundtrip(values: np.ndarray) -> bytes:
    """Encode a leaf, check it decodes bit for bit, return the block."""
    block = encode_leaf(TIMES[: values.size], values)
    t, v = decode_leaves([block])
    np.testing.assert_array_equal(t, TIMES[: values.size])
    np.testing.assert_array_equal(v.view(np.int64), values.view(np.int64))
    return block


def bits(pattern: int) -> float:
    return float(np.array([pattern], dtype=np.uint64).view(np.float64)[0])


def test_old_blocks_still_decode() -> None:
    t, v = old_points()
    got_t, got_v = decode_leaves([OLD_F64])
    np.testing.assert_array_equal(got_t, t)
    np.testing.assert_array_equal(got_v.view(np.int64), v.view(np.int64))
    got_t, got_v = decode_leaves([OLD_F32, OLD_F64])  # decoded together with a newer block, too
    np.testing.assert_array_equal(got_v[:40], v.astype(np.float32).astype(np.float64))
    new = encode_leaf(t, v)
    _, both_v = decode_leaves([OLD_F64, new])
    np.testing.assert_array_equal(both_v.view(np.int64), np.concatenate([v, v]).view(np.int64))


def test_noisy_decimals_are_stored_as_integers() -> None:
    values = np.round(7200 + np.cumsum(RNG.normal(0, 0.05, N)), 3)
    found = find_integers(values)
    assert found is not None and found.mode == MODE_DECIMAL and found.exponent == 3
    assert found.exc_pos.size == 0
    block = roundtrip(values)
    # Integer steps of a few hundred thousandths need two bytes a point; float64 bit deltas need ~5.
    assert len(block) < 3.0 * N + 200


def test_adc_counts_times_a_factor() -> None:
    counts = np.rint(20000 * np.sin(np.arange(N) * 2 * np.pi / 16) + RNG.normal(0, 8, N))
    values = counts * 0.0123
    found = find_integers(values)
    assert found is not None and found.mode == MODE_SCALED
    block = roundtrip(values)
    assert len(block) < 3.6 * N  # times ~2 B a point, counts steps of up to ~8000: 2 B


@pytest.mark.parametrize(
    "special",
    [np.nan, np.inf, -np.inf, -0.0, bits(0x7FF0000000ABCDEF), bits(0xFFF8000000001234), 5e-324, 1.7e308],
    ids=["nan", "inf", "-inf", "-0", "snan-payload", "qnan-payload", "subnormal", "huge"],
)
def test_special_values_come_back_bit_for_bit(special: float) -> None:
    values = np.round(RNG.normal(50, 1, N), 2)
    values[[0, 3, 500, N - 1]] = special
    found = find_integers(values)
    assert found is not None and set(found.exc_pos.tolist()) >= {0, 3, 500, N - 1}
    roundtrip(values)


@pytest.mark.parametrize(
    "values",
    [
        RNG.random(N),  # random float64: no integers to find
        np.sin(np.arange(N) / 100.0),  # smooth, unrounded
        (7200 + RNG.normal(0, 0.05, N)).astype(np.float32).astype(np.float64),  # float32 origin
        np.zeros(N),
        np.full(N, -0.0),
        np.round(RNG.normal(0, 1e6, N), 10),  # too many digits for exact integers
        np.full(N, np.nan),
    ],
    ids=["random", "sine", "float32", "zeros", "negative-zeros", "many-digits", "all-nan"],
)
def test_other_signals_round_trip(values: np.ndarray) -> None:
    roundtrip(values)


def test_mixed_leaves_decode_together() -> None:
    decimal = np.round(RNG.normal(60, 0.1, 300), 4)
    scaled = np.rint(RNG.normal(0, 300, 300)) * 0.0123
    f32 = RNG.normal(0, 1, 300).astype(np.float32).astype(np.float64)
    raw = RNG.random(300)
    blocks = [encode_leaf(TIMES[:300], v) for v in (decimal, f32, scaled, raw, decimal)]
    _, got = decode_leaves(blocks)
    want = np.concatenate([decimal, f32, scaled, raw, decimal])
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    out = (np.empty(want.size, np.int64), np.empty(want.size))
    decode_leaves(blocks, out=out)
    np.testing.assert_array_equal(out[1].view(np.int64), want.view(np.int64))
