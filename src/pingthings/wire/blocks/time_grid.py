"""Time stamps coded against a regular grid fitted to them (leaf flag 4, block format 4).

Measurement devices sample at a nominal rate, and their time stamps wander around that grid by a
small jitter (a PMU's clock, a rounding to whole microseconds). Delta-of-delta coding turns a jitter
of ``±j`` into second differences of ``±4j``; coding each time stamp against the grid itself keeps
the residual within ``±j``. For a leaf of times counted in ``step`` units from its first one
(``u[i] = (t[i] - t0) / step``):

* the grid is ``nominal[i] = (i * slope + 2**(frac - 1)) >> frac``, a fixed-point slope (``frac``
  fraction bits) fitted by least squares, so a rate like 120 Hz (8,333,333.3 ns) stays exact to a
  fraction of a unit over the leaf;
* the residuals ``u[i] - nominal[i] - base`` (``base`` their minimum, so they are not negative) are
  stored in ``low`` whole byte planes plus, for the bits above those, a packed part of ``top`` bits a
  point (1, 2 or 4; 0 for none), so ±2 us of jitter on nanosecond stamps costs 12 bits a point
  instead of the 16 of delta-of-delta planes.

Layout of the times section (after the leaf header, whose ``d0`` field holds ``slope`` and whose
``tplanes`` field holds ``low``)::

    <B frac><B top><6 pad><q base>   low x n bytes (byte planes)   ceil(n * top / 8) bytes (packed)

Decoding is exact integer arithmetic, with no running sums: a grid leaf decodes in a few vector
passes. The encoder keeps delta-of-delta coding where it is smaller (see :mod:`.leaf_codec`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

EXT = struct.Struct("<BB6xq")
#: Most fraction bits of the fixed-point slope.
MAX_FRAC = 32
#: Widest residual coded against a grid (wider ones mean the times are not near any grid).
MAX_BITS = 32
#: Spans (in steps) up to which the least-squares fit in float64 is meaningful.
MAX_SPAN = 1 << 52


class Grid(NamedTuple):
    """A fitted grid and the coded residuals of one leaf's times (``body``: the whole times section)."""

    slope: int
    low: int
    body: bytes


def nominal(count: int, slope: int, frac: int) -> np.ndarray:
    """The grid points ``0 .. count - 1`` as int64."""
    out = np.arange(count, dtype=np.int64)
    out *= slope
    if frac:
        out += 1 << (frac - 1)
        out >>= frac
    return out


def fit(units: np.ndarray) -> Grid | None:
    """The grid coding of times ``units`` (int64, in steps from the first, sorted), or None when the
    times are too few, too spread out, or too far from any grid."""
    n = int(units.size)
    span = int(units[-1]) if n else 0
    if n < 3 or not 0 < span < MAX_SPAN:
        return None
    centred = np.arange(n, dtype=np.float64) - (n - 1) / 2
    slope_f = float(np.dot(centred, units.astype(np.float64))) / float(np.dot(centred, centred))
    frac = max(0, min(MAX_FRAC, 61 - span.bit_length()))
    best: tuple[int, int, np.ndarray] | None = None
    for k, slope in enumerate(_candidates(units, slope_f, frac)):
        if slope < 0 or (n - 1) * slope + (1 << frac) >= 1 << 62:
            continue
        resid = units - nominal(n, slope, frac)
        width = int(resid.max()) - int(resid.min())
        if best is None or width < best[0]:
            best = (width, slope, resid)
        if k == 0 and (width - width // 8).bit_length() == width.bit_length():
            break  # the least-squares grid is close enough: a better one would not save a bit
    if best is None:
        return None
    width, slope, resid = best
    base = int(resid.min())
    resid -= base
    bits = width.bit_length()
    if bits > MAX_BITS:
        return None
    low, rest = divmod(bits, 8)
    top = 0 if rest == 0 else 1 if rest == 1 else 2 if rest == 2 else 4 if rest <= 4 else 8
    if top == 8:
        low, top = low + 1, 0
    codes = resid.view(np.uint64)
    planes = codes.view(np.uint8).reshape(n, 8)[:, :low].T.tobytes()
    packed = pack_bits(codes >> np.uint64(8 * low), top) if top else b""
    return Grid(slope, low, EXT.pack(frac, top, base) + planes + packed)


def _candidates(units: np.ndarray, slope_f: float, frac: int) -> Iterator[int]:
    """Fixed-point slopes to try: the least-squares one, and that one tilted so the largest (or
    smallest) residuals of the two halves of the leaf come out equal, which narrows the residuals'
    range when the fit over a short leaf is pulled by its jitter."""
    n = units.size
    yield round(slope_f * (1 << frac))
    resid = units - (np.arange(n, dtype=np.float64) * slope_f).round().astype(np.int64)
    half = n // 2
    tilts = []
    for pick in (np.argmax, np.argmin):
        a, b = int(pick(resid[:half])), half + int(pick(resid[half:]))
        tilts.append((float(resid[b]) - float(resid[a])) / (b - a))
        yield round((slope_f + tilts[-1]) * (1 << frac))
    yield round((slope_f + sum(tilts) / 2) * (1 << frac))


def pack_bits(small: np.ndarray, width: int) -> bytes:
    """Non-negative integers below ``2**width`` (``width`` 1, 2 or 4) packed ``8 // width`` a byte,
    the first in the lowest bits."""
    per = 8 // width
    rows = -(-small.size // per)
    flat = np.zeros(rows * per, dtype=np.uint8)
    flat[: small.size] = small
    items = flat.reshape(rows, per)
    out = items[:, 0].copy()
    for j in range(1, per):
        out |= items[:, j] << np.uint8(j * width)
    return out.tobytes()


def packed_size(count: int, width: int) -> int:
    """Bytes of ``count`` packed ``width``-bit integers."""
    return -(-count * width // 8)


def unpack_bits(packed: np.ndarray, width: int, out: np.ndarray) -> None:
    """Write the integers of ``packed`` (uint8, ``width`` bits each) into ``out`` (uint8, room for
    ``packed.size * 8 // width`` of them; the padding of the last byte is written too)."""
    per = 8 // width
    rows = out[: packed.size * per].reshape(packed.size, per)
    for j in range(per):
        np.right_shift(packed, j * width, out=rows[:, j])
    rows &= np.uint8((1 << width) - 1)
