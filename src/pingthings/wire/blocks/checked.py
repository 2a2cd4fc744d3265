"""Structural checks of a point block that came from elsewhere (a RawBlocks reply), before decoding.

The decoder of :mod:`.leaf_codec` trusts its input: it was written by this engine. A block received
over the network is checked here first, so a damaged or hostile block gives a :class:`BadBlock`
naming the problem instead of a numpy error from deep inside the decoder, or a huge allocation:

* framing: a point kind (leaf or group), a known codec, and for LZ4 a declared body size within
  :data:`MAX_BODY_BYTES` that the decompressor confirms;
* a group's table: 1 to 255 entries, increasing slots below 64, counts adding up to the leaf's points;
* the leaf body: known flags, plane counts of at most 8, a positive time step, a valid grid
  extension, scaled-integer exceptions inside the leaf, and a length exactly that of its sections;
* a pco leaf body: no other flag, a times chunk inside the body. Its chunks are checked as they
  decode, into arrays of the leaf's length only (see :mod:`.pco_leaf`).
"""

from __future__ import annotations

import numpy as np

from pingthings.wire.blocks import codec, pco_leaf, time_grid
from pingthings.wire.blocks.leaf_codec import (
    _COUNTS,
    _FLAG_F32,
    _FLAG_GRID,
    _FLAG_PCO,
    _FLAG_SCALED,
    _GROUP_HEADER,
    _HEADER,
    _SCALED_EXT,
    KIND_GROUP,
    KIND_LEAF,
    POINT_KINDS,
    LeafView,
)
from pingthings.wire.blocks.value_transform import MAX_EXPONENT, MODE_DECIMAL, MODE_SCALED

#: Largest decompressed body a received block may declare (a stored block of 1,024 points holds at
#: most ~30 KiB; only a leaf under the finest node can grow past that, and the server sends such a
#: large one as columns).
MAX_BODY_BYTES = 16 << 20
#: Widths (bits) a grid's packed top bits may have.
_TOP_WIDTHS = (0, 1, 2, 4)
_KNOWN_FLAGS = _FLAG_F32 | _FLAG_SCALED | _FLAG_GRID | _FLAG_PCO


class BadBlock(ValueError):
    """A received block that is not a well-formed point block (the message says what is wrong)."""


def increasing_slots(slots: bytes) -> bool:
    """Whether ``slots`` (non-empty) are strictly increasing slot numbers below 64.

    Compared with its own sorted set in C: a cold read of 10^7 points checks ~1,500 groups of a
    dozen slots each, where a pairwise loop in Python costs ~5 µs a group.
    """
    return slots[-1] < 64 and slots == bytes(sorted(set(slots)))


def declared_body_size(block: bytes | memoryview) -> int:
    """Bytes of the block's body once decompressed, as its framing says (without decompressing)."""
    if len(block) < 2:
        raise BadBlock(f"block of {len(block)} bytes is shorter than its 2-byte frame")
    if block[1] == codec.CODEC_RAW:
        return len(block) - 2
    if block[1] != codec.CODEC_LZ4:
        raise BadBlock(f"unknown block codec {block[1]}")
    if len(block) < 6:
        raise BadBlock(f"LZ4 block of {len(block)} bytes is shorter than its 6-byte frame")
    return int.from_bytes(bytes(block[2:6]), "little")


def checked_view(block: bytes | memoryview) -> LeafView:
    """The :class:`~.leaf_codec.LeafView` of a received block, once its structure is checked.

    Raises
    ------
    BadBlock
        What is wrong with the block.
    """
    if len(block) < 2 or block[0] not in POINT_KINDS:
        kind = block[0] if len(block) else None
        raise BadBlock(f"block kind {kind} is not a point block (expected one of {POINT_KINDS})")
    size = declared_body_size(block)
    if size > MAX_BODY_BYTES:
        raise BadBlock(f"block declares a body of {size} bytes, more than the {MAX_BODY_BYTES} allowed")
    try:
        whole = memoryview(codec.unpack(block))  # type: ignore[arg-type]
    except Exception as exc:  # LZ4 refused it
        raise BadBlock(f"block does not unpack: {exc}") from None
    if len(whole) != size:
        raise BadBlock(f"block body unpacks to {len(whole)} bytes, its frame says {size}")
    if block[0] == KIND_GROUP:
        _check_group(whole)
    elif len(whole) < _HEADER.size:
        raise BadBlock(f"leaf body of {len(whole)} bytes is shorter than its {_HEADER.size}-byte header")
    view = LeafView.from_body(block[0], whole)
    _check_leaf_body(view.body)
    return view


def _check_group(whole: memoryview) -> None:
    if len(whole) < _GROUP_HEADER.size or whole[0] != KIND_GROUP:
        raise BadBlock("leaf group has no group header")
    k = whole[1]
    table = _GROUP_HEADER.size + 5 * k
    table += -table % 8
    if k == 0 or len(whole) < table + _HEADER.size:
        raise BadBlock(f"leaf group of {k} entries has a table or leaf header cut short")
    # Python ints, not numpy calls: a group has a few dozen entries at most, and a cold read of
    # 10^7 points checks ~1,500 groups.
    total = sum(_COUNTS[k].unpack_from(whole, _GROUP_HEADER.size))
    slots = bytes(whole[_GROUP_HEADER.size + 4 * k : _GROUP_HEADER.size + 5 * k])
    if not increasing_slots(slots):
        raise BadBlock("leaf group slots are not increasing slot numbers below 64")
    n = _HEADER.unpack_from(whole, table)[4]
    if total != n:
        raise BadBlock(f"leaf group counts add up to {total}, its leaf holds {n}")


def _check_leaf_body(body: memoryview) -> None:
    if len(body) < _HEADER.size:
        raise BadBlock(f"leaf body of {len(body)} bytes is shorter than its {_HEADER.size}-byte header")
    kind, flags, tplanes, vplanes, n, _, step, _ = _HEADER.unpack_from(body, 0)
    if kind != KIND_LEAF:
        raise BadBlock(f"leaf body of kind {kind}, expected {KIND_LEAF}")
    if flags & ~_KNOWN_FLAGS:
        raise BadBlock(f"leaf flags {flags:#x} include unknown ones")
    if tplanes > 8 or vplanes > 8:
        raise BadBlock(f"leaf has {tplanes} time and {vplanes} value byte planes (at most 8)")
    if step < 1:
        raise BadBlock(f"leaf time step {step} is not positive")
    if n > MAX_BODY_BYTES:
        raise BadBlock(f"leaf claims {n} points")
    off = _HEADER.size
    if flags & _FLAG_PCO:
        _check_pco_body(body, flags, tplanes, vplanes, n)
        return
    if flags & _FLAG_SCALED:
        if len(body) < off + _SCALED_EXT.size:
            raise BadBlock("scaled leaf has its extension cut short")
        mode, exponent, exceptions, _ = _SCALED_EXT.unpack_from(body, off)
        off += _SCALED_EXT.size
        if mode not in (MODE_DECIMAL, MODE_SCALED) or exponent > MAX_EXPONENT:
            raise BadBlock(f"scaled leaf has mode {mode} and exponent {exponent}")
        if exceptions > n or len(body) < off + 12 * exceptions:
            raise BadBlock(f"scaled leaf has mode {mode} and {exceptions} exceptions for {n} points")
        if exceptions:
            pos = np.frombuffer(body, dtype="<u4", count=exceptions, offset=off)
            if int(pos.max()) >= n:
                raise BadBlock(f"scaled leaf has an exception at point {int(pos.max())} of {n}")
        off += 12 * exceptions
    if flags & _FLAG_GRID:
        if len(body) < off + time_grid.EXT.size:
            raise BadBlock("grid leaf has its extension cut short")
        frac, top, _ = time_grid.EXT.unpack_from(body, off)
        if frac > 63 or top not in _TOP_WIDTHS or n == 0:
            raise BadBlock(f"grid leaf has {frac} fraction bits and {top}-bit tops for {n} points")
        off += time_grid.EXT.size + n * tplanes
        if top:
            off += time_grid.packed_size(n, top)
    elif n >= 3:
        off += (n - 2) * tplanes
    off += n * vplanes
    if off != len(body):
        raise BadBlock(f"leaf body of {len(body)} bytes, its header describes {off}")


def _check_pco_body(body: memoryview, flags: int, tplanes: int, vplanes: int, n: int) -> None:
    """A pco leaf body: its sections lie inside it (the chunks themselves are checked as they
    decode, into arrays of the leaf's ``n`` points)."""
    if flags not in (_FLAG_PCO, _FLAG_PCO | _FLAG_GRID) or tplanes or vplanes or n == 0:
        raise BadBlock(f"pco leaf has flags {flags:#x}, {tplanes} and {vplanes} planes, {n} points")
    off = _HEADER.size
    if flags & _FLAG_GRID:
        if len(body) <= off + pco_leaf.GRID_EXT.size:
            raise BadBlock("pco grid leaf has its grid or values cut short")
        frac, offset = pco_leaf.GRID_EXT.unpack_from(body, off)
        slope = _HEADER.unpack_from(body, 0)[7]
        if frac > pco_leaf.MAX_FRAC or not 0 <= offset < 1 << frac or not 0 <= slope < 1 << 62:
            raise BadBlock(f"pco grid leaf has {frac} fraction bits, offset {offset} and slope {slope}")
        return
    tbytes = _HEADER.unpack_from(body, 0)[7]
    if not 0 < tbytes < len(body) - off:
        raise BadBlock(f"pco leaf declares a times chunk of {tbytes} bytes in a body of {len(body)}")
