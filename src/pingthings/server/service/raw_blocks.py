"""RawBlocks: one stream's raw points as the tree stores them (platform service, server-streaming).

The same read as ArrowRawValues (same checks: the uuid, the stream's visibility to the caller, the
range and the version, through the same engine calls, so the same errors), but the uncached leaf
blocks go out as stored and the client decodes them (see :mod:`pingthings.server.engine.stored_reads`):

* a read served from memory (stream loaded, latest version, every block cached) is the cached
  path of ArrowRawValues, its chunks sent as column pieces, produced in the event loop;
* any other read is planned in a worker thread, then produced there (SQL fetches, and the decode
  of the blocks the client cannot take) up to two messages ahead of the sender, inside a slot of
  the server's read gate, as the other cold reads are;
* the request lists the block formats the client decodes; if the engine's format is not among them,
  every point goes out as columns;
* a message carries at most :data:`MESSAGE_BYTES` bytes of pieces, what an ArrowRawValues message
  of 50,000 points carries; an empty read is one message holding only the version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pingthings._proto.pingthings.platform.v1 import RawBlocksParams
from pingthings.server.engine.stored_reads import ColumnPiece
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.convert import blocking
from pingthings.server.service.prefetch import chunk_replies
from pingthings.server.service.raw_block_reply import raw_blocks_message
from pingthings.server.service.read_gate import ReadGate
from pingthings.server.service.visibility import visible_uuid

#: Points per message of a read served from memory (as ArrowRawValues).
ROWS_PER_MESSAGE = 50_000
#: Most bytes of pieces per message (16 bytes per point of ROWS_PER_MESSAGE).
MESSAGE_BYTES = 16 * ROWS_PER_MESSAGE


class RawBlocks:
    """The RawBlocks handler.

    Parameters
    ----------
    meta
        The metadata store (hidden streams).
    engine
        The engine.
    gate
        The server's read gate (None: reads are not gated).
    """

    def __init__(self, meta: Any, engine: Any, gate: ReadGate | None = None) -> None:
        self._meta = meta
        self._engine = engine
        self._gate = gate

    async def raw_blocks(self, request: RawBlocksParams) -> AsyncIterator[bytes | Segments]:
        """Stream the pieces of the points in [start, end) in bounded messages."""
        uuid = visible_uuid(self._meta, request.uuid)
        engine = self._engine
        block_format = engine.block_format
        send_blocks = block_format in request.block_formats
        start, end, version = request.start, request.end, request.version_major
        in_memory = engine.iter_raw_pieces_in_memory(uuid, start, end, version, ROWS_PER_MESSAGE)
        if in_memory is not None:
            read, chunks = in_memory

            def encode(chunk: Any) -> bytes | Segments:
                times, values, rows = chunk
                return raw_blocks_message(read, 0, [ColumnPiece(times, values, rows)])

        else:
            read, chunks = await blocking(
                engine.iter_raw_stored, uuid, start, end, version, MESSAGE_BYTES, send_blocks
            )

            def encode(chunk: Any) -> bytes | Segments:
                return raw_blocks_message(read, block_format, chunk)

        replies = chunk_replies(chunks, encode, lambda: raw_blocks_message(read, 0, []), self._gate)
        try:
            async for reply in replies:
                yield reply
        finally:
            await replies.aclose()
