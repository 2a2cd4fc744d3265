"""Encode RawBlocksResponse messages by hand, columns as views of the points (no copy).

Layout (see ``protos/pingthings/platform/v1/platform.proto``): ``version_major = 2``,
``block_format = 3`` (when the message holds stored blocks) and ``pieces = 4``, each a RawBlock:
``block = 1``, ``slots = 2``, ``count = 3`` for a stored block, or ``times = 4``, ``values = 5``
(little-endian int64 and float64) for columns, each preceded where needed by a ``padding = 6``
field so that its data starts at a multiple of 8 bytes from the message's start (the client can
then view it in place). Stored blocks are copied into the message's head (a few hundred kB);
column views become parts of a :class:`~.arrow_reply.Segments`, written out as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pingthings.server.engine.stored_reads import ColumnPiece, Piece, StoredPiece
from pingthings.server.service.arrow_reply import Segments
from pingthings.wire.protowire import LEN, VARINT, encode_key, encode_varint

_VERSION = encode_key(2, VARINT)
_FORMAT = encode_key(3, VARINT)
_PIECE = encode_key(4, LEN)
_BLOCK = encode_key(1, LEN)
_SLOTS = encode_key(2, LEN)
_COUNT = encode_key(3, VARINT)
_TIMES = encode_key(4, LEN)
_VALUES = encode_key(5, LEN)
_PADDING = encode_key(6, LEN)


def _stored(piece: StoredPiece) -> bytes:
    body = b"".join(
        (
            _BLOCK,
            encode_varint(len(piece.block)),
            piece.block,
            _SLOTS,
            encode_varint(len(piece.slots)),
            piece.slots,
            _COUNT,
            encode_varint(piece.points),
        )
    )
    return _PIECE + encode_varint(len(body)) + body


def _padding(at: int, then: int) -> bytes:
    """A ``padding`` field to write at offset ``at`` so that what follows it, ``then`` bytes of key
    and length, ends at a multiple of 8 (empty when it already does)."""
    gap = -(at + then) % 8
    if gap == 0:
        return b""
    gap = gap if gap >= 2 else gap + 8  # the field's own key and length take 2 bytes
    return _PADDING + encode_varint(gap - 2) + bytes(gap - 2)


def _column_fields(at: int, column: int) -> tuple[bytes, bytes]:
    """The bytes before the time data and before the value data of a columns piece whose body
    starts at offset ``at`` of the message, each column ``column`` bytes, both data aligned to 8."""
    size_of = encode_varint(column)
    before_times = _padding(at, 1 + len(size_of)) + _TIMES + size_of
    after_times = at + len(before_times) + column
    before_values = _padding(after_times, 1 + len(size_of)) + _VALUES + size_of
    return before_times, before_values


def raw_blocks_message(version: int, block_format: int, pieces: Sequence[Piece]) -> bytes | Segments:
    """One RawBlocksResponse holding ``pieces`` in order (``block_format`` is written only when a
    stored block is among them; the columns' data start at multiples of 8 bytes)."""
    head = bytearray(_VERSION + encode_varint(version) if version else b"")
    if any(isinstance(p, StoredPiece) for p in pieces):
        head += _FORMAT + encode_varint(block_format)
    parts: list[bytes | bytearray | np.ndarray] = []
    sizes: list[int] = []
    offset = 0  # of ``head`` in the message
    for piece in pieces:
        if isinstance(piece, StoredPiece):
            head += _stored(piece)
            continue
        assert isinstance(piece, ColumnPiece)
        column = 8 * piece.points
        # The body's length prefix and the paddings depend on each other: try the shortest prefix.
        start = offset + len(head) + len(_PIECE)
        for width in range(1, 11):
            before_times, before_values = _column_fields(start + width, column)
            body = len(before_times) + len(before_values) + 2 * column
            if len(encode_varint(body)) == width:
                break
        head += _PIECE + encode_varint(body) + before_times
        parts.append(head)
        sizes.append(len(head))
        for t in piece.times:
            parts.append(t)
            sizes.append(t.nbytes)
        head = bytearray(before_values)
        parts.append(head)
        sizes.append(len(head))
        for v in piece.values:
            parts.append(v)
            sizes.append(v.nbytes)
        offset = sum(sizes)
        head = bytearray()
    if not parts:
        return bytes(head)
    if head:
        parts.append(head)
        sizes.append(len(head))
    return Segments(parts, sizes)
