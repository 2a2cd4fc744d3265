"""Leaf bodies compressed by pcodec (block format 5): times and values each as one pco chunk.

Why a library here: pcodec (PyPI ``pcodec``, Apache-2.0, a compiled numerical codec) finds by itself
what :mod:`.time_grid` and :mod:`.value_transform` find by hand (a regular time step with jitter,
decimals ``k / 10**e``, counts times a factor, float32-exact values) and more (smooth signals, by
higher-order deltas), and decodes straight into a given array in compiled code. Measured on this
machine, 1,000,000 points in leaves of 6,400 (``bench/engine.py`` signals), pco level 4 against the
byte-plane layout of :mod:`.leaf_codec` with LZ4:

* noisy decimal PMU 2.78 against 2.79 B/pt, float32 C37.118 1.99 against 2.53, int16 counts times a
  factor 1.21 against 1.27, smooth sine 2.11 against 4.53, random float64 7.12 against 7.06;
* decode 54-88 against 34-50 M points/s, encode 6-12 against 5-12 M points/s.

It is lossless bit for bit (NaN payloads, infinities, -0.0 included). Random float64 is the one case
where it is larger; the encoder then keeps whichever layout is smaller (see :func:`.leaf_codec.encode_leaf`).

Layout of a pco leaf body (the block around it is framed raw, not LZ4: pco output does not shrink
further)::

    header  <B kind=1><B flags=8><B 0><B 0><I n><q first time><q 1><q bytes of the times chunk>
    times   pco chunk of the n int64 times
    values  pco chunk of the n float64 values (to the end of the body)

Times on an exact grid (a sampling clock without jitter, e.g. 960 Hz: 1,041,666.67 ns apart) are
not a pco chunk but the grid itself (flags 8 | 4): pco takes ~0.33 bytes a point for such a
fractional period, the grid nothing (without it the 960 Hz point-on-wave signal took 4 % more disk
than in byte planes)::

    header  <B kind=1><B flags=12><B 0><B 0><I n><q first time><q step><q slope>
    grid    <B frac><7 pad><q offset>        time i = t0 + step * ((i * slope + offset) >> frac)
    values  pco chunk of the n float64 values
"""

from __future__ import annotations

import struct

import numpy as np
from pcodec import ChunkConfig, standalone

#: Leaf flag of a pco body (see :mod:`.leaf_codec`).
FLAG_PCO = 8
#: Leaf flag of times on a grid (shared with :mod:`.leaf_codec`'s byte-plane layout).
FLAG_GRID = 4
#: pco compression level: 4 sizes within 1 % of level 8 on the signals above, at twice the speed.
LEVEL = 4
#: The grid of exact-grid times: fraction bits of the slope, rounding offset.
GRID_EXT = struct.Struct("<B7xq")
#: Most fraction bits of a grid's slope.
MAX_FRAC = 32
#: Spans (in steps) above which times are not tried as a grid.
MAX_GRID_SPAN = 1 << 52
_CONFIG = ChunkConfig(compression_level=LEVEL)


def encode_body(header: struct.Struct, kind: int, times: np.ndarray, values: np.ndarray) -> bytes:
    """The pco leaf body of sorted ``times`` (int64) and ``values`` (float64), at least three points."""
    n = int(times.size)
    v = standalone.simple_compress(np.ascontiguousarray(values, dtype=np.float64), _CONFIG)
    grid = _exact_grid(times)
    if grid is not None:
        step, slope, ext = grid
        return header.pack(kind, FLAG_PCO | FLAG_GRID, 0, 0, n, int(times[0]), step, slope) + ext + v
    t = standalone.simple_compress(np.ascontiguousarray(times, dtype=np.int64), _CONFIG)
    return header.pack(kind, FLAG_PCO, 0, 0, n, int(times[0]), 1, len(t)) + t + v


def _exact_grid(times: np.ndarray) -> tuple[int, int, bytes] | None:
    """``(step, slope, grid extension)`` when ``times`` lie exactly on a fixed-point grid; else None.

    On an exact grid consecutive gaps differ by at most one step, so anything else costs one pass
    over the gaps. Then, for the rounding offsets ``2**(frac - 1)`` (nearest) and 0 (floor), the
    slopes that give every time exactly form an interval, computed with integer arithmetic."""
    gaps = np.diff(times)
    low, high = int(gaps.min()), int(gaps.max())
    if low <= 0 or high - low > max(1, low >> 10):
        return None
    step = int(np.gcd.reduce(gaps))
    if high - low > step:
        return None
    units = times[1:] - times[0]
    if step > 1:
        units //= step
    span = int(units[-1])
    if span >= MAX_GRID_SPAN:
        return None
    frac = max(0, min(MAX_FRAC, 61 - span.bit_length()))
    index = np.arange(1, times.size, dtype=np.int64)
    scaled = units << frac  # below 2**61
    for offset in ((1 << frac) >> 1, 0):
        # slope * i + offset must lie in [u * 2**frac, (u + 1) * 2**frac) for every point i
        least = int((-((offset - scaled) // index)).max())
        most = int(((scaled + ((1 << frac) - 1 - offset)) // index).min())
        if 0 <= least <= most:
            return step, least, GRID_EXT.pack(frac, offset)
    return None


def grid_times(count: int, t0: int, step: int, slope: int, frac: int, offset: int, out: np.ndarray) -> None:
    """Write the ``count`` times of a grid into ``out`` (int64; arithmetic wraps as the sums do)."""
    out[:] = np.arange(count, dtype=np.int64)
    out *= slope
    out += offset
    out >>= frac
    if step != 1:
        out *= step
    out += t0


def decode_into(
    body: bytes | memoryview, head: tuple[int, ...], offset: int, times: np.ndarray, values: np.ndarray
) -> None:
    """Decode a pco body (header fields ``head``, sections from ``offset`` on) into ``times`` and
    ``values``, which must be exactly the leaf's length.

    Raises
    ------
    ValueError
        When a chunk is damaged, of another number type, or holds another number of points.
    """
    flags, n, t0, step, last = head[1], head[4], head[5], head[6], head[7]
    if flags & FLAG_GRID:
        frac, rounding = GRID_EXT.unpack_from(body, offset)
        end = offset + GRID_EXT.size
        grid_times(n, t0, step, last, frac, rounding, times)
    else:
        end = offset + last
        if last < 0 or end > len(body):
            raise ValueError(f"pco leaf declares a times chunk of {last} bytes in a body of {len(body)}")
        _chunk_into(bytes(body[offset:end]), times, "times")
    _chunk_into(bytes(body[end:]), values, "values")


def _chunk_into(chunk: bytes, dst: np.ndarray, what: str) -> None:
    try:
        progress = standalone.simple_decompress_into(chunk, dst)
    except Exception as exc:  # pco reports damage as RuntimeError
        raise ValueError(f"pco {what} chunk does not decode: {exc}") from None
    if not progress.finished or progress.n_processed != dst.size:
        raise ValueError(f"pco {what} chunk does not hold the leaf's {dst.size} points")
