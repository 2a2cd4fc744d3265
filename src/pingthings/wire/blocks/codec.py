"""Block framing and general-purpose compression shared by leaf and node blocks.

A block is ``<B kind><B codec>`` followed, for LZ4, by ``<I body size>`` and the compressed body, or by the
raw body when compression would not shrink it. LZ4 (through pyarrow) was chosen over zstd after measuring
on 515-point PMU leaves: zstd saved 0.5 bytes per point but cost 22 us per decompression and 30-47 us per
compression (a fresh context per call), LZ4 1 us and 2 us; the byte-plane transforms before it already
remove most of the redundancy.
"""

from __future__ import annotations

import struct

import pyarrow as pa

CODEC_RAW = 0
CODEC_LZ4 = 1
_LZ4 = pa.Codec("lz4")
_SIZE = struct.Struct("<I")


def pack(kind: int, body: bytes, compress: bool = True) -> bytes:
    """Frame and compress a block body (``compress`` false: framed raw, for bodies that are
    compressed already)."""
    if not compress:
        return bytes((kind, CODEC_RAW)) + body
    packed = _LZ4.compress(body, asbytes=True)
    if len(packed) + _SIZE.size < len(body):
        return bytes((kind, CODEC_LZ4)) + _SIZE.pack(len(body)) + packed
    return bytes((kind, CODEC_RAW)) + body


def unpack(block: bytes) -> bytes | memoryview:
    """The body of a block made by :func:`pack`."""
    if block[1] == CODEC_RAW:
        return memoryview(block)[2:]
    (size,) = _SIZE.unpack_from(block, 2)
    return _LZ4.decompress(memoryview(block)[6:], decompressed_size=size, asbytes=True)
