"""Compression of leaf blocks: sorted int64 times and float64 values.

Layout of an encoded leaf (before zstd)::

    header  <B kind=1><B flags><B tplanes><B vplanes><I n><q t0><q step><q d0>
    times   tplanes byte planes of zigzag(delta-of-delta of (t - t0) / step), n - 2 entries
    values  vplanes byte planes of zigzag(integer delta of the value bits), n entries

* Times: ``step`` is the greatest common divisor of the gaps (1000 for microsecond timestamps), so the
  second differences of a regular or jittered grid are tiny integers.
* Values: when every value is exactly a float32 (as IEEE C37.118 PMUs report), the float32 bit patterns
  are used (flag 1), otherwise the float64 ones. Consecutive bit patterns are subtracted as integers (with
  wrap-around), zigzag-coded so small negative steps stay small, and split into byte planes; planes above
  the largest used byte are dropped. A noisy but slowly moving signal then leaves one or two busy planes.
* The whole body is compressed once with zstd; a body that does not shrink is stored raw (flag 2).
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa

_HEADER = struct.Struct("<BBBBIqqq")
KIND_LEAF = 1
_FLAG_F32 = 1
_FLAG_RAW = 2
_CODEC = pa.Codec("zstd", compression_level=3)
_SIZE = struct.Struct("<I")


def _zigzag(d: np.ndarray) -> np.ndarray:
    """Map signed integers to unsigned so that small magnitudes become small numbers."""
    bits = d.dtype.itemsize * 8
    return ((d << 1) ^ (d >> (bits - 1))).view(d.dtype.str.replace("i", "u"))


def _unzigzag(z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_zigzag`."""
    signed = z.view(z.dtype.str.replace("u", "i"))
    return (z >> 1).view(signed.dtype) ^ -(signed & 1)


def _planes(z: np.ndarray) -> tuple[int, bytes]:
    """Byte planes of an unsigned array, dropping the all-zero high planes."""
    if z.size == 0:
        return 0, b""
    top = int(z.max())
    nplanes = max(1, (top.bit_length() + 7) // 8)
    as_bytes = z.view(np.uint8).reshape(z.size, z.dtype.itemsize)[:, :nplanes]
    return nplanes, as_bytes.T.tobytes()


def _from_planes(buf: bytes | memoryview, offset: int, n: int, nplanes: int, dtype: str) -> np.ndarray:
    """Rebuild an unsigned array of ``n`` items from ``nplanes`` byte planes."""
    width = np.dtype(dtype).itemsize
    out = np.zeros((n, width), dtype=np.uint8)
    if nplanes and n:
        planes = np.frombuffer(buf, dtype=np.uint8, count=n * nplanes, offset=offset)
        out[:, :nplanes] = planes.reshape(nplanes, n).T
    return out.view(dtype).reshape(n)


def encode_leaf(times: np.ndarray, values: np.ndarray) -> bytes:
    """Encode sorted ``times`` (int64) and ``values`` (float64) into a compressed leaf block."""
    n = int(times.size)
    t0 = int(times[0]) if n else 0
    flags = 0
    step = 1
    d0 = 0
    tbody = b""
    tplanes = 0
    if n >= 2:
        gaps = np.diff(times)
        g = int(np.gcd.reduce(gaps))
        step = g if g > 0 else 1
        if step > 1:
            gaps = gaps // step
        d0 = int(gaps[0])
        if n >= 3:
            tplanes, tbody = _planes(_zigzag(np.diff(gaps)))
    v32 = values.astype(np.float32)
    if np.array_equal(v32.astype(np.float64), values):
        flags |= _FLAG_F32
        bits = v32.view(np.int32)
    else:
        bits = values.view(np.int64)
    deltas = np.empty_like(bits)
    if n:
        deltas[0] = bits[0]
        np.subtract(bits[1:], bits[:-1], out=deltas[1:])
    vplanes, vbody = _planes(_zigzag(deltas))
    body = _HEADER.pack(KIND_LEAF, flags, tplanes, vplanes, n, t0, step, d0) + tbody + vbody
    packed = _CODEC.compress(body, asbytes=True)
    if len(packed) + _SIZE.size >= len(body):
        return bytes([KIND_LEAF, _FLAG_RAW]) + body
    return bytes([KIND_LEAF, 0]) + _SIZE.pack(len(body)) + packed


def decode_leaf(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode a block made by :func:`encode_leaf` into ``(times, values)`` arrays."""
    if block[1] & _FLAG_RAW:
        body = memoryview(block)[2:]
    else:
        (size,) = _SIZE.unpack_from(block, 2)
        body = _CODEC.decompress(memoryview(block)[6:], decompressed_size=size, asbytes=True)
    _, flags, tplanes, vplanes, n, t0, step, d0 = _HEADER.unpack_from(body, 0)
    off = _HEADER.size
    times = np.empty(n, dtype=np.int64)
    if n:
        times[0] = 0
    if n >= 2:
        gaps = np.empty(n - 1, dtype=np.int64)
        gaps[0] = d0
        if n >= 3:
            dod = _unzigzag(_from_planes(body, off, n - 2, tplanes, "<u8"))
            np.cumsum(dod, out=gaps[1:])
            gaps[1:] += d0
        np.cumsum(gaps, out=times[1:])
        if step != 1:
            times *= step
    times += t0
    off += (n - 2) * tplanes if n >= 3 else 0
    if flags & _FLAG_F32:
        deltas = _unzigzag(_from_planes(body, off, n, vplanes, "<u4"))
        values = np.cumsum(deltas, dtype=np.int32).view(np.float32).astype(np.float64)
    else:
        deltas = _unzigzag(_from_planes(body, off, n, vplanes, "<u8"))
        values = np.cumsum(deltas, dtype=np.int64).view(np.float64)
    return times, values
