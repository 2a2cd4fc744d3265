"""A RawBlocks reply the client cannot trust: every defect gives a CorruptReplyError naming the
stream and the piece, never a numpy error from inside the decoder.

The replies come from a scripted server (no real server sends them); the good reply proves the
scripting itself decodes.
"""

from __future__ import annotations

import struct
import uuid as uuidlib
from collections.abc import Iterator

import numpy as np
import pytest

from client.scripted_server import Reply, ScriptedServer
from pingthings._proto.pingthings.platform.v1 import RawBlock, RawBlocksResponse
from pingthings.server.engine.stored_reads import ColumnPiece, StoredPiece
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.raw_block_reply import raw_blocks_message
from pingthings.timeseries import AsyncClient
from pingthings.timeseries.exceptions import CorruptReplyError
from pingthings.wire.blocks import BLOCK_FORMAT
from pingthings.wire.blocks.checked import MAX_BODY_BYTES
from pingthings.wire.blocks.leaf_codec import encode_group, encode_leaf
from pingthings.wire.blocks.pco_leaf import FLAG_PCO

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000_000_000
UUID = uuidlib.UUID(int=77)
TIMES = T0 + np.arange(500, dtype=np.int64) * 8_333_333
VALUES = np.round(np.sin(np.arange(500) / 9), 3)
LEAF = encode_leaf(TIMES, VALUES, planes=True)  # LZ4-framed byte planes: the framing cases below
JITTERED = TIMES + np.random.default_rng(1).integers(0, 2001, 500)  # sorted still
PCO_LEAF = encode_leaf(JITTERED, VALUES)  # a pco body (times and values chunks), framed raw
SLOT = bytes([5])


def _message(*pieces: StoredPiece | ColumnPiece, block_format: int = BLOCK_FORMAT) -> bytes:
    reply = raw_blocks_message(3, block_format, pieces)
    return reply.join() if isinstance(reply, Segments) else reply


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


async def _read(server: ScriptedServer, *payloads: bytes) -> np.ndarray:
    server.script("RawBlocks", Reply(list(payloads)))
    async with await AsyncClient.connect(endpoint=server.endpoint) as client:
        stream = await client.stream_from_uuid(UUID)
        table = await stream.raw_values(T0, T0 + 10**12)
    return table.column("value").to_numpy()


async def test_a_good_reply_decodes(scripted: ScriptedServer) -> None:
    columns = ColumnPiece([TIMES[:3] + 10**11], [np.array([1.0, 2.0, 3.0])], 3)
    values = await _read(scripted, _message(StoredPiece(LEAF, SLOT, 500)), _message(columns))
    np.testing.assert_array_equal(values, np.concatenate([VALUES, [1.0, 2.0, 3.0]]))


async def test_a_pco_leaf_decodes_beside_byte_planes(scripted: ScriptedServer) -> None:
    assert PCO_LEAF[1] == 0 and PCO_LEAF[2 + 1] == FLAG_PCO  # raw framing, pco flag in the body
    later = encode_leaf(TIMES + 10**11, VALUES)  # pco values, grid times
    values = await _read(scripted, _message(StoredPiece(PCO_LEAF, SLOT, 500), StoredPiece(later, SLOT, 500)))
    np.testing.assert_array_equal(values, np.concatenate([VALUES, VALUES]))


def _pco_times_chunk(size: int) -> bytes:
    """The pco leaf with the byte count of its times chunk (the header's last field) replaced."""
    return PCO_LEAF[:26] + struct.pack("<q", size) + PCO_LEAF[34:]


def _pco_grid(frac: int) -> bytes:
    """A pco leaf whose times are a grid (an exact 120 Hz one), with the grid's fraction bits set."""
    block = bytearray(encode_leaf(TIMES, VALUES))
    assert block[3] == FLAG_PCO | 4
    block[34] = frac  # the grid extension follows the 32-byte leaf header (after the 2-byte frame)
    return bytes(block)


def _pco_flipped() -> bytes:
    """The pco leaf with bytes inside its values chunk changed."""
    block = bytearray(PCO_LEAF)
    for k in range(len(block) - 40, len(block) - 20):
        block[k] ^= 0x5A
    return bytes(block)


def _lz4_size(block: bytes, size: int) -> bytes:
    return block[:2] + struct.pack("<I", size) + block[6:]


def _group() -> bytes:
    return encode_group(np.array([1, 2]), np.array([200, 300]), TIMES, VALUES)


def _uneven_columns() -> bytes:
    """A columns piece whose value column is one point short of its time column."""
    piece = RawBlock(times=TIMES[:2].tobytes(), values=VALUES[:1].tobytes())
    return bytes(RawBlocksResponse(version_major=3, pieces=[piece]))


#: What is wrong -> (the reply, words its error must hold).
CASES = {
    "cut short": (_message(StoredPiece(LEAF[:-7], SLOT, 500)), "does not unpack"),
    "not a point block": (_message(StoredPiece(b"\x02\x00" + LEAF[2:], SLOT, 500)), "not a point block"),
    "unknown codec": (_message(StoredPiece(LEAF[:1] + b"\x09" + LEAF[2:], SLOT, 500)), "codec 9"),
    "oversized body": (_message(StoredPiece(_lz4_size(LEAF, MAX_BODY_BYTES + 1), SLOT, 500)), "more than"),
    "wrong body size": (_message(StoredPiece(_lz4_size(LEAF, 90_000), SLOT, 500)), "header describes"),
    "wrong count": (_message(StoredPiece(LEAF, SLOT, 499)), "hold 500 points, the server said 499"),
    "slot out of range": (_message(StoredPiece(_group(), bytes([70]), 200)), "slot numbers below 64"),
    "slots not increasing": (_message(StoredPiece(_group(), bytes([2, 1]), 500)), "slot numbers below 64"),
    "no slots": (_message(StoredPiece(LEAF, b"", 500)), "without its slots"),
    "columns of unequal size": (_uneven_columns(), "columns of 16 and 8 bytes"),
    "pco times chunk outside": (_message(StoredPiece(_pco_times_chunk(10**6), SLOT, 500)), "times chunk of"),
    "pco chunk cut short": (_message(StoredPiece(PCO_LEAF[:-9], SLOT, 500)), "do not decode: pco"),
    "pco grid fraction": (_message(StoredPiece(_pco_grid(70), SLOT, 500)), "70 fraction bits"),
    "pco chunk damaged": (_message(StoredPiece(_pco_flipped(), SLOT, 500)), "do not decode: pco"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_corrupt_piece_names_stream_and_piece(scripted: ScriptedServer, case: str) -> None:
    payload, words = CASES[case]
    with pytest.raises(CorruptReplyError) as info:
        await _read(scripted, payload)
    message = str(info.value)
    assert str(UUID) in message and "RawBlocks piece #0" in message
    assert words in message, message


async def test_blocks_of_a_format_not_asked_for_are_refused(scripted: ScriptedServer) -> None:
    with pytest.raises(CorruptReplyError, match="block format 99"):
        await _read(scripted, _message(StoredPiece(LEAF, SLOT, 500), block_format=99))


async def test_times_out_of_order_are_refused(scripted: ScriptedServer) -> None:
    late = StoredPiece(encode_leaf(TIMES + 10**11, VALUES), SLOT, 500)
    with pytest.raises(CorruptReplyError, match="not in order"):
        await _read(scripted, _message(late, StoredPiece(LEAF, SLOT, 500)))
