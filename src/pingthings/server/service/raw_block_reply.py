"""Encode RawBlocksResponse messages by hand, columns as views of the points (no copy).

Layout (see ``protos/pingthings/platform/v1/platform.proto``): ``version_major = 2``,
``block_format = 3`` (when the message holds stored blocks) and ``pieces = 4``, each a RawBlock:
``block = 1``, ``slots = 2``, ``count = 3`` for a stored block, or ``times = 4``, ``values = 5``
(little-endian int64 and float64) for columns. Stored blocks are copied into the message's head
(a few hundred kB); column views become parts of a :class:`~.arrow_reply.Segments`, written out
as they are.
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


def raw_blocks_message(version: int, block_format: int, pieces: Sequence[Piece]) -> bytes | Segments:
    """One RawBlocksResponse holding ``pieces`` in order (``block_format`` is written only when a
    stored block is among them)."""
    head = bytearray(_VERSION + encode_varint(version) if version else b"")
    if any(isinstance(p, StoredPiece) for p in pieces):
        head += _FORMAT + encode_varint(block_format)
    parts: list[bytes | bytearray | np.ndarray] = []
    sizes: list[int] = []
    for piece in pieces:
        if isinstance(piece, StoredPiece):
            head += _stored(piece)
            continue
        assert isinstance(piece, ColumnPiece)
        column = 8 * piece.points
        size_of = encode_varint(column)
        body = 2 * (1 + len(size_of) + column)
        head += _PIECE + encode_varint(body) + _TIMES + size_of
        parts.append(head)
        sizes.append(len(head))
        for t in piece.times:
            parts.append(t)
            sizes.append(t.nbytes)
        head = bytearray(_VALUES + size_of)
        parts.append(head)
        sizes.append(len(head))
        for v in piece.values:
            parts.append(v)
            sizes.append(v.nbytes)
        head = bytearray()
    if not parts:
        return bytes(head)
    if head:
        parts.append(head)
        sizes.append(len(head))
    return Segments(parts, sizes)
