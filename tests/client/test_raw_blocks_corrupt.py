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

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000_000_000
UUID = uuidlib.UUID(int=77)
TIMES = T0 + np.arange(500, dtype=np.int64) * 8_333_333
VALUES = np.round(np.sin(np.arange(500) / 9), 3)
LEAF = encode_leaf(TIMES, VALUES)
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
