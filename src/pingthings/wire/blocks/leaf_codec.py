"""Compression of leaf blocks: sorted int64 times and float64 values.

Since block format 5 a leaf body is normally a pco one (flag 8, see :mod:`.pco_leaf`): the times
and the values each compressed by pcodec. The byte-plane layout below is what formats 1-4 wrote; it
is still written for leaves of fewer than :data:`PCO_MIN_POINTS` points and when it is the smaller
(incompressible values), and every older block decodes as before, alone or in one batch with pco
ones. Byte-plane layout of a leaf body (before compression)::

    header  <B kind=1><B flags><B tplanes><B vplanes><I n><q t0><q step><q d0>
    times   tplanes byte planes of zigzag(delta-of-delta of (t - t0) / step), n - 2 entries
    values  vplanes byte planes of zigzag(integer delta of the value bits), n entries

* Times: ``step`` is the greatest common divisor of the gaps (1000 for microsecond timestamps), so the
  second differences of a regular or jittered grid are tiny integers.
* Grid times (flag 4, block format 4): when smaller, the times are instead coded against a regular
  grid fitted to them (see :mod:`.time_grid`); then ``d0`` holds the grid's slope, ``tplanes`` the
  residuals' whole byte planes, and the times section is the one :mod:`.time_grid` describes.
* Values: when every value is exactly a float32 (as IEEE C37.118 PMUs report), the float32 bit patterns
  are used (flag 1), otherwise the float64 ones. Consecutive bit patterns are subtracted as integers (with
  wrap-around), zigzag-coded so small negative steps stay small, and split into byte planes; planes above
  the largest used byte are dropped. A noisy but slowly moving signal then leaves one or two busy planes.
* Scaled integers (flag 2, block format 3): when the values are decimals with few digits (``k / 10**e``)
  or integer counts times a factor, the integers ``k`` replace the bit patterns and their deltas are
  coded as above (see :mod:`.value_transform`). An extension follows the header::

      <B mode><B exponent><2 pad><I exceptions><d factor>  exceptions x <I position>  exceptions x <q bits>

  and the points listed as exceptions get back their exact bits (NaN payloads, infinities, -0.0).
  Leaves without flag 2 are decoded exactly as before, so files written by older versions stay readable.
* The whole body is then compressed with LZ4 (see :mod:`.codec`).

Leaf groups: the small leaves that sit under one internal node (e.g. 64 leaves of ~16 points when a
bucket just over ``LEAF_MAX`` points was split) are stored as one block, so they cost one SQLite row, one
LZ4 call and one numpy pass instead of 64. A group block's body is::

    <B kind=3><B entries><6 pad>  entries x <I count>  entries x <B slot>  padding to 8 bytes
    leaf body                     (as above) of the concatenation of the entries' points, in slot order

Slot ``s`` of the node that points at the group owns the points of the entry whose slot is ``s``. The
entries are consecutive sorted buckets, so their concatenation is sorted and encodes like one leaf.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import accumulate

import numpy as np

from pingthings.wire.blocks import pco_leaf, time_grid
from pingthings.wire.blocks.codec import pack, unpack
from pingthings.wire.blocks.value_transform import Scaled, find_integers, restore

_HEADER = struct.Struct("<BBBBIqqq")
_GROUP_HEADER = struct.Struct("<BB6x")
KIND_LEAF = 1
KIND_GROUP = 3
#: Kinds of blocks that hold points.
POINT_KINDS = (KIND_LEAF, KIND_GROUP)
_FLAG_F32 = 1
_FLAG_SCALED = 2
_FLAG_GRID = 4
_FLAG_PCO = pco_leaf.FLAG_PCO
#: Leaves shorter than this keep the byte-plane layout (a pco chunk has a header of ~25 bytes).
PCO_MIN_POINTS = 64
#: Bytes a point above which a pco block is compared with the byte-plane one (random float64 takes
#: ~7.1 B/pt in pco, ~7.06 in byte planes; every structured signal measured stays under 5).
PCO_POOR = 6.5
_SCALED_EXT = struct.Struct("<BB2xId")
#: The entry counts of a group's table, by number of entries.
_COUNTS = [struct.Struct(f"<{k}I") for k in range(256)]


def _zigzag(d: np.ndarray) -> np.ndarray:
    """Map signed integers to unsigned so that small magnitudes become small numbers."""
    bits = d.dtype.itemsize * 8
    return ((d << 1) ^ (d >> (bits - 1))).view(d.dtype.str.replace("i", "u"))


def _unzigzag(z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_zigzag`."""
    signed = z.view(z.dtype.str.replace("u", "i"))
    return (z >> 1).view(signed.dtype) ^ -(signed & 1)


def _segmented_cumsum(x: np.ndarray, starts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Running sum of integers ``x`` (in place) that restarts at every index in ``starts`` (sorted, first 0).

    Each segment's first element is reduced by the previous segment's total, so one plain cumsum does it;
    wrap-around at the width of ``x`` (int64, or int32 for float32 bit patterns) cancels exactly. The
    result goes to ``out`` when given.
    """
    if starts.size > 1:
        totals = np.add.reduceat(x, starts, dtype=x.dtype)
        x[starts[1:]] -= totals[:-1]
    return np.cumsum(x, dtype=x.dtype, out=x if out is None else out)


def _spread(per_segment: np.ndarray, starts: np.ndarray, total: int) -> np.ndarray:
    """``np.repeat(per_segment, lengths)`` computed as a cumsum of the steps between segments."""
    steps = np.zeros(total, dtype=np.int64)
    steps[starts] = np.diff(per_segment, prepend=0)
    return np.cumsum(steps, out=steps)


def _plane_count(z: np.ndarray) -> int:
    """Byte planes :func:`_planes` keeps for a non-empty unsigned array (at least one)."""
    return max(1, (int(z.max()).bit_length() + 7) // 8)


def _planes(z: np.ndarray) -> tuple[int, bytes]:
    """Byte planes of an unsigned array, dropping the all-zero high planes."""
    if z.size == 0:
        return 0, b""
    nplanes = _plane_count(z)
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


def _interleave(planes: np.ndarray) -> np.ndarray:
    """Unsigned integers (a fresh array) whose byte ``j`` is row ``j`` of the ``(k, n)`` uint8 ``planes``.

    They are as narrow as 1, 2, 4 or 8 bytes allow for ``k`` planes, and are filled with one strided
    copy per plane (3x faster than placing each leaf's planes at an 8-byte stride).
    """
    k, n = planes.shape
    if k <= 1:
        return planes[0].copy() if k else np.zeros(n, dtype=np.uint8)
    width = 2 if k == 2 else 4 if k <= 4 else 8
    wide = np.zeros((n, width), dtype=np.uint8)
    for j in range(k):
        wide[:, j] = planes[j]
    return wide.view(f"<u{width}").reshape(n)


def _unzigzag_planes(planes: np.ndarray) -> np.ndarray:
    """Signed integers (a fresh array) from the ``(k, n)`` uint8 byte planes of their zigzag codes.

    Decoded at the width of :func:`_interleave`: a zigzag code below ``2**(8 * w)`` decodes to the
    same number at width ``w`` as at 64 bits, so the caller may sign-extend it (with ``astype``) to
    any wider type. Narrow widths make every pass cheaper (one byte per point for a one-plane time
    column instead of eight).
    """
    codes = _interleave(planes)
    width = codes.itemsize
    out = (codes >> 1).view(f"<i{width}")
    sign = codes.view(f"<i{width}") & 1
    np.negative(sign, out=sign)
    out ^= sign
    return out


def encode_leaf(times: np.ndarray, values: np.ndarray, *, planes: bool = False) -> bytes:
    """Encode sorted ``times`` (int64) and ``values`` (float64) into a compressed leaf block.

    The body is a pco one (see :mod:`.pco_leaf`) unless ``planes`` asks for the byte-plane layout,
    the leaf is shorter than :data:`PCO_MIN_POINTS`, or the byte-plane block is smaller (tried only
    when pco took more than :data:`PCO_POOR` bytes a point).
    """
    return _block(KIND_LEAF, b"", times, values, planes)


def encode_group(
    slots: np.ndarray, counts: np.ndarray, times: np.ndarray, values: np.ndarray, *, planes: bool = False
) -> bytes:
    """Encode several leaves of one node as one group block.

    Parameters
    ----------
    slots
        Increasing slot numbers (0..63) of the leaves in their node.
    counts
        Points of each leaf (all positive); ``times``/``values`` are the leaves' points concatenated.
    planes
        Use the byte-plane layout for the leaf body (as :func:`encode_leaf`).
    """
    k = int(slots.size)
    if not 0 < k <= 255 or int(counts.sum()) != times.size:
        raise ValueError(f"bad leaf group: {k} entries, {int(counts.sum())} counted, {times.size} points")
    table = _GROUP_HEADER.pack(KIND_GROUP, k) + counts.astype("<u4").tobytes() + slots.astype("u1").tobytes()
    table += bytes(-len(table) % 8)
    return _block(KIND_GROUP, table, times, values, planes)


def _block(kind: int, table: bytes, times: np.ndarray, values: np.ndarray, planes: bool) -> bytes:
    """The block of kind ``kind``: ``table`` (a group's) then the leaf body, framed."""
    n = int(times.size)
    if planes or n < PCO_MIN_POINTS:
        return pack(kind, table + _leaf_body(times, values))
    pco = pack(kind, table + pco_leaf.encode_body(_HEADER, KIND_LEAF, times, values), compress=False)
    if len(pco) <= PCO_POOR * n:
        return pco
    other = pack(kind, table + _leaf_body(times, values))
    return pco if len(pco) <= len(other) else other


def _leaf_body(times: np.ndarray, values: np.ndarray) -> bytes:
    """The uncompressed leaf body of sorted points."""
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
            dod = _zigzag(np.diff(gaps))
            units = np.zeros(n, dtype=np.int64)
            np.cumsum(gaps, out=units[1:])
            grid = time_grid.fit(units)
            if grid is not None and len(grid.body) <= (n - 2) * _plane_count(dod):
                flags |= _FLAG_GRID
                tplanes, tbody, d0 = grid.low, grid.body, grid.slope
            else:
                tplanes, tbody = _planes(dod)
    with np.errstate(over="ignore", invalid="ignore"):
        v32 = values.astype(np.float32)
    ext = b""
    if np.array_equal(v32.astype(np.float64), values):
        # float32-origin values (C37.118 PMUs) are coded by their float32 bits, as before.
        flags |= _FLAG_F32
        vplanes, vbody = _value_planes(v32.view(np.int32))
    else:
        scaled = find_integers(values)
        if scaled is not None:
            vplanes, vbody = _value_planes(scaled.ints)
            ext = _scaled_ext(scaled)
            flags |= _FLAG_SCALED
        if scaled is None or vplanes > 2:  # the float64 bits may still be smaller: compare
            fplanes, fbody = _value_planes(values.view(np.int64))
            if scaled is None or len(fbody) <= len(vbody) + len(ext):
                flags &= ~_FLAG_SCALED
                vplanes, vbody, ext = fplanes, fbody, b""
    return _HEADER.pack(KIND_LEAF, flags, tplanes, vplanes, n, t0, step, d0) + ext + tbody + vbody


def _value_planes(bits: np.ndarray) -> tuple[int, bytes]:
    """Byte planes of the zigzagged successive differences of integers (the first one as it is)."""
    deltas = np.empty_like(bits)
    if bits.size:
        deltas[0] = bits[0]
        np.subtract(bits[1:], bits[:-1], out=deltas[1:])
    return _planes(_zigzag(deltas))


def _scaled_ext(scaled: Scaled) -> bytes:
    """The header extension of a scaled-integer leaf, with its exceptions."""
    head = _SCALED_EXT.pack(scaled.mode, scaled.exponent, scaled.exc_pos.size, scaled.factor)
    return head + scaled.exc_pos.astype("<u4").tobytes() + scaled.exc_bits.astype("<i8").tobytes()


def decode_leaf(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode a block made by :func:`encode_leaf` (or a whole group) into ``(times, values)`` arrays."""
    return decode_leaves([block])


def _bounds(body: bytes | memoryview, k: int) -> np.ndarray:
    """Slot bounds of a group: slot ``s`` owns points ``bounds[s]:bounds[s + 1]`` (65 int64).

    Built from Python ints (a group has a few dozen entries at most): half the time of five numpy
    calls on tiny arrays, which a cold read of 10^7 points pays ~1,500 times.
    """
    off = _GROUP_HEADER.size
    per_slot = [0] * 65
    for slot, count in zip(body[off + 4 * k : off + 5 * k], _COUNTS[k].unpack_from(body, off), strict=True):
        per_slot[slot + 1] = count
    return np.array(list(accumulate(per_slot)), dtype=np.int64)


class LeafView:
    """The unpacked leaf body inside a leaf or group block.

    Attributes
    ----------
    body
        The leaf body (decode with :func:`decode_views`).
    size
        Number of points in the body.
    """

    __slots__ = ("_bounds", "_group", "body", "size")

    def __init__(self, block: bytes) -> None:
        self._set(block[0], memoryview(unpack(block)))

    @classmethod
    def from_body(cls, kind: int, body: memoryview) -> LeafView:
        """The view of a block of kind ``kind`` whose body was already unpacked."""
        view = cls.__new__(cls)
        view._set(kind, body)
        return view

    def _set(self, kind: int, body: memoryview) -> None:
        self._bounds: np.ndarray | None = None
        self._group: memoryview | None = None
        if kind == KIND_GROUP:
            self._group = body
            start = _GROUP_HEADER.size + 5 * body[1]
            body = body[start + (-start % 8) :]
        self.body = body
        self.size: int = _HEADER.unpack_from(body, 0)[4]

    @property
    def bounds(self) -> np.ndarray | None:
        """None for a plain leaf (its points belong to its one slot); for a group, int64 array of
        65 entries: slot ``s`` owns points ``bounds[s]:bounds[s + 1]``.

        Built on first use: a read that wants every slot of a group never needs them (~9 µs a
        group, and a cold read of 10^7 points meets ~1,500 groups).
        """
        if self._bounds is None and self._group is not None:
            self._bounds = _bounds(self._group, self._group[1])
        return self._bounds

    @property
    def slots(self) -> bytes | None:
        """The slots a group's points belong to, in order (None for a plain leaf)."""
        group = self._group
        if group is None:
            return None
        k = group[1]
        return bytes(group[_GROUP_HEADER.size + 4 * k : _GROUP_HEADER.size + 5 * k])


def decodes_without_gil(views: Sequence[LeafView]) -> bool:
    """Whether decoding ``views`` runs (almost) entirely outside the GIL: pco bodies do (pcodec
    releases it while it decodes), byte-plane bodies are dozens of short numpy calls that hold it."""
    return all(view.body[1] & _FLAG_PCO for view in views)


def decode_views(
    views: Sequence[LeafView], out: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the concatenated points of many :class:`LeafView` (``out`` as for :func:`decode_leaves`)."""
    return _decode_bodies([x.body for x in views], out)


def decode_leaves(
    blocks: Sequence[bytes], out: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode many leaf blocks at once into the concatenation of their ``(times, values)``.

    Only the byte planes are placed leaf by leaf; the zigzag decoding and the running sums that rebuild
    times and values run once over all points, with each leaf's running sum restarted at its first point.
    ``out`` (two arrays of exactly the total length) receives the result instead of new arrays. A group
    block decodes to all of its leaves' points.
    """
    return _decode_bodies([LeafView(b).body for b in blocks], out)


def _decode_bodies(
    bodies: Sequence[bytes | memoryview], out: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decode_leaves` on unpacked leaf bodies."""
    if not bodies:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    heads = [_HEADER.unpack_from(body, 0) for body in bodies]
    counts = [h[4] for h in heads]
    total = sum(counts)
    if out is not None and not (out[0].size == out[1].size == total):
        raise ValueError(f"leaves hold {total} points, output has room for {out[0].size}")
    if total == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if any(h[1] & _FLAG_PCO for h in heads):
        return _decode_with_pco(bodies, heads, total, out)
    # Byte planes are first gathered plane by plane (one contiguous copy per leaf and section), then
    # interleaved into 8-byte integers with one strided copy per plane for the whole batch: measured
    # 3x faster than placing each leaf's planes at a stride of 8 bytes directly.
    grid = [h[1] & _FLAG_GRID != 0 for h in heads]
    tplanes_of = [(h[2], g) for h, g in zip(heads, grid, strict=True)]
    tp = np.zeros((max((k for k, g in tplanes_of if not g), default=0), total), dtype=np.uint8)
    gp = np.zeros((max((k for k, g in tplanes_of if g), default=0), total), dtype=np.uint8)
    vp = np.zeros((max(h[3] for h in heads), total), dtype=np.uint8)
    gtop = np.zeros(total + 8 if any(grid) else 0, dtype=np.uint8)
    grid_ext: list[tuple[int, int, int, int]] = []  # (frac, top, base, low) a leaf; zeros if not grid
    first = 0
    scaled: list[_ScaledLeaf] = []
    header = _HEADER.size
    for body, (_, flags, tplanes, vplanes, n, _, _, _) in zip(bodies, heads, strict=True):
        raw = np.frombuffer(body, dtype=np.uint8)
        off = header
        if flags & _FLAG_SCALED:
            ext = _SCALED_EXT.unpack_from(body, off)
            scaled.append((first, n, ext, off + _SCALED_EXT.size, body))
            off += _SCALED_EXT.size + 12 * ext[2]
        if flags & _FLAG_GRID:
            frac, top, base = time_grid.EXT.unpack_from(body, off)
            grid_ext.append((frac, top, base, tplanes))
            off += time_grid.EXT.size
            end = off + n * tplanes
            if tplanes:
                gp[:tplanes, first : first + n] = raw[off:end].reshape(tplanes, n)
            off = end
            if top:
                end = off + time_grid.packed_size(n, top)
                time_grid.unpack_bits(raw[off:end], top, gtop[first:])
                gtop[first + n : first + n + 8] = 0  # the padding of the last byte
                off = end
        else:
            grid_ext.append((0, 0, 0, 0))
            if n >= 3 and tplanes:
                end = off + (n - 2) * tplanes
                tp[:tplanes, first + 2 : first + n] = raw[off:end].reshape(tplanes, n - 2)
                off = end
        if n and vplanes:
            vp[:vplanes, first : first + n] = raw[off : off + n * vplanes].reshape(vplanes, n)
        first += n
    n_arr = np.array(counts, dtype=np.int64)
    used = n_arr > 0
    n_u = n_arr[used]
    starts = np.zeros(n_u.size, dtype=np.int64)
    np.cumsum(n_u[:-1], out=starts[1:])
    head = np.array([h[5:8] for h in heads], dtype=np.int64)[used]  # t0, step, d0

    is_grid = np.array(grid, dtype=bool)[used]
    grid_args = np.array(grid_ext, dtype=np.int64)[used]
    t_out = None if out is None else out[0]
    if is_grid.all():
        offs = _grid_times(gp, gtop, grid_args, head, starts, n_u, t_out)
    else:
        offs = _delta_times(_unzigzag_planes(tp).astype(np.int64, copy=False), head, starts, n_u, t_out)
        if is_grid.any():
            gt = _grid_times(gp, gtop, grid_args, head, starts, n_u, None)
            np.copyto(offs, gt, where=np.repeat(is_grid, n_u))

    # Values: integer deltas whose first entry per leaf is the full bit pattern.
    f32 = np.array([h[1] & _FLAG_F32 for h in heads], dtype=bool)[used]
    deltas = _unzigzag_planes(vp)
    if f32.all() and not scaled and deltas.itemsize <= 4:
        # float32 bit patterns: running sums at 32 bits (their wrap-around is the encoder's), one
        # conversion to float64.
        bits32 = _segmented_cumsum(deltas.astype(np.int32, copy=False), starts)
        values32 = bits32.view(np.float32)
        if out is not None:
            np.copyto(out[1], values32)
            return offs, out[1]
        return offs, values32.astype(np.float64)
    bits = _segmented_cumsum(deltas.astype(np.int64, copy=False), starts)
    if scaled:
        return offs, _scaled_values(heads, bits, scaled, n_u, used, None if out is None else out[1])
    if out is not None and (f32.all() or not f32.any()):
        narrow = bits.astype(np.uint32).view(np.float32) if f32.all() else bits.view(np.float64)
        np.copyto(out[1], narrow)
        return offs, out[1]
    if f32.all():
        values = bits.astype(np.uint32).view(np.float32).astype(np.float64)
    elif not f32.any():
        values = bits.view(np.float64)
    else:
        rows32 = np.repeat(f32, n_u)
        values = bits.view(np.float64).copy()
        values[rows32] = bits[rows32].astype(np.uint32).view(np.float32).astype(np.float64)
    if out is not None:
        np.copyto(out[1], values)
        return offs, out[1]
    return offs, values


def _decode_with_pco(
    bodies: Sequence[bytes | memoryview],
    heads: list[tuple[int, ...]],
    total: int,
    out: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_decode_bodies` of a batch holding pco bodies: each decodes straight into its span of
    the result; runs of byte-plane bodies between them decode together into theirs."""
    times, values = out if out is not None else (np.empty(total, np.int64), np.empty(total, np.float64))
    first = 0
    run: list[bytes | memoryview] = []
    run_first = 0
    for body, head in zip(bodies, heads, strict=True):
        n = head[4]
        if head[1] & _FLAG_PCO:
            if run:
                _decode_bodies(run, (times[run_first:first], values[run_first:first]))
                run = []
            pco_leaf.decode_into(
                body, head, _HEADER.size, times[first : first + n], values[first : first + n]
            )
            run_first = first + n
        else:
            run.append(body)
        first += n
    if run:
        _decode_bodies(run, (times[run_first:first], values[run_first:first]))
    return times, values


def _delta_times(
    z: np.ndarray, head: np.ndarray, starts: np.ndarray, n_u: np.ndarray, out: np.ndarray | None
) -> np.ndarray:
    """Times of delta-of-delta coded leaves from their second differences ``z`` (int64, in place).

    ``head`` holds each leaf's ``(t0, step, d0)``; ``d0`` is planted after each leaf start, then two
    segmented running sums rebuild the times.
    """
    total = z.size
    two = n_u >= 2
    z[starts[two] + 1] = head[two, 2]
    gaps = _segmented_cumsum(z, starts)  # per leaf: 0, d0, d0 + dod0, ...
    t0, steps = head[:, 0], head[:, 1]
    step = int(steps[0])
    rem = t0 % step
    if (steps == step).all() and (rem == rem[0]).all():
        # Common case (one step, e.g. whole microseconds): count in steps from 0 and plant each t0 // step
        # at its leaf start, so one running sum gives the times without a per-point addition of t0.
        gaps[starts] = t0 // step
        offs = _segmented_cumsum(gaps, starts, out)
        if step != 1:
            offs *= step
        if rem[0]:
            offs += rem[0]
        return offs
    offs = _segmented_cumsum(gaps, starts, out)
    offs *= np.repeat(steps, n_u)
    offs += _spread(t0, starts, total)
    return offs


def _wrap(x: int) -> int:
    """``x`` modulo 2**64 as a signed int64 value (numpy's array arithmetic wraps the same way)."""
    return ((x + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


def _grid_times(
    planes: np.ndarray,
    top: np.ndarray,
    ext: np.ndarray,
    head: np.ndarray,
    starts: np.ndarray,
    n_u: np.ndarray,
    out: np.ndarray | None,
) -> np.ndarray:
    """Times of grid-coded leaves (see :mod:`.time_grid`), all leaves at once.

    ``planes`` and ``top`` hold the residuals' low byte planes and unpacked top bits, ``ext`` each
    leaf's ``(frac, top bits, base, low planes)``, ``head`` its ``(t0, step, slope)``. Two numpy calls
    per leaf (its grid, its offset) and a few passes over the batch: measured faster than spreading
    every per-leaf quantity over the points with ``np.repeat``. Integer arithmetic wraps modulo
    2**64, so only the grid product (kept below 2**62 by the encoder) must not overflow.
    """
    total = int(n_u.sum())
    t = np.empty(total, dtype=np.int64) if out is None else out
    ramp = np.arange(int(n_u.max()), dtype=np.int64)
    leaves = list(
        zip(
            starts.tolist(),
            n_u.tolist(),
            head[:, 0].tolist(),
            head[:, 1].tolist(),
            head[:, 2].tolist(),
            ext[:, 0].tolist(),
            ext[:, 2].tolist(),
            strict=True,
        )
    )
    frac0, step0 = int(ext[0, 0]), int(head[0, 1])
    uniform = bool((ext[:, 0] == frac0).all() and (head[:, 1] == step0).all())
    for a, n, _, _, slope, frac, _ in leaves:
        seg = t[a : a + n]
        np.multiply(ramp[:n], slope, out=seg)
        if not uniform and frac:
            seg += 1 << (frac - 1)
            seg >>= frac
    if uniform and frac0:
        t += 1 << (frac0 - 1)
        t >>= frac0
    lows = ext[:, 3]
    has_top = bool(top.size and ext[:, 1].any())
    if has_top and planes.shape[0] <= 1 and (lows == planes.shape[0]).all():
        # The usual case (12-bit residuals: one byte plane and a 4-bit top): the residuals are put
        # together as uint16, a third of the memory traffic of int64 passes.
        resid = top[:total].astype(np.uint16)
        if planes.shape[0]:
            resid <<= np.uint16(8)
            resid |= planes[0]
        t += resid
    else:
        if planes.shape[0]:
            t += planes[0] if planes.shape[0] == 1 else _interleave(planes)
        if has_top:
            high = top[:total].astype(np.int64)
            high <<= int(8 * lows[0]) if (lows == lows[0]).all() else np.repeat(8 * lows, n_u)
            t += high
    if uniform:
        if step0 != 1:
            t *= step0
        for a, n, t0, _, _, _, base in leaves:
            t[a : a + n] += _wrap(t0 + base * step0)
    else:
        for a, n, t0, step, _, _, base in leaves:
            seg = t[a : a + n]
            seg += base
            seg *= step
            seg += t0
    return t


#: A scaled-integer leaf being decoded: first point, points, header extension, offset of its
#: exceptions, body.
_ScaledLeaf = tuple[int, int, tuple[int, int, int, float], int, "bytes | memoryview"]


def _scaled_values(
    heads: list[tuple[int, ...]],
    bits: np.ndarray,
    scaled: list[_ScaledLeaf],
    n_u: np.ndarray,
    used: np.ndarray,
    out: np.ndarray | None,
) -> np.ndarray:
    """Values of leaves of which some hold scaled integers: ``bits`` are their running sums."""
    values = np.empty(bits.size, dtype=np.float64) if out is None else out
    ext0 = scaled[0][2]
    if len(scaled) == len(heads) and all(e[:2] == ext0[:2] and e[3] == ext0[3] for _, _, e, _, _ in scaled):
        restore(bits, ext0[0], ext0[1], ext0[3], out=values)  # one conversion for all (the common case)
    else:
        f32 = np.repeat(np.array([h[1] & _FLAG_F32 for h in heads], dtype=bool)[used], n_u)
        np.copyto(values, bits.view(np.float64))
        values[f32] = bits[f32].astype(np.uint32).view(np.float32)
        for first, n, (mode, exponent, _, factor), _, _ in scaled:
            restore(bits[first : first + n], mode, exponent, factor, out=values[first : first + n])
    for first, _, (_, _, n_exc, _), off, body in scaled:
        if n_exc:
            pos = np.frombuffer(body, dtype="<u4", count=n_exc, offset=off).astype(np.int64)
            exc = np.frombuffer(body, dtype="<i8", count=n_exc, offset=off + 4 * n_exc)
            values[first + pos] = exc.view(np.float64)
    return values
