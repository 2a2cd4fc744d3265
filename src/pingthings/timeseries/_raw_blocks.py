"""Raw reads through the platform service's RawBlocks: the server sends blocks as stored, we decode.

A cold raw read used to cost the server a decode of every block and 16 bytes a point to send, while
the client mostly waited. RawBlocks (the pingthings embedded server) sends each block that is not
decoded in its cache as its stored bytes (~3-5 bytes a point) and the rest as columns; this module
decodes the blocks with the engine's own decoder (:mod:`pingthings.wire.blocks`), so the two
processes share the work and the result is the same, bit for bit:

* each reply message is decoded when it arrives (its blocks in one vectorised batch, in the event
  loop, where the Arrow path opens its messages), while the server fetches and sends the next;
* a stored block's points are those of the slots the piece lists, in slot order, as the engine
  takes them; the message's points are then clipped to ``[start, end)`` (only the first and last
  blocks of a read reach outside it);
* every block is checked before it is decoded (:mod:`pingthings.wire.blocks.checked`) and every
  piece's point count against what the server said; anything wrong raises
  :class:`~pingthings.timeseries.exceptions.CorruptReplyError` naming the stream and the piece;
* the request lists :data:`~pingthings.wire.blocks.BLOCK_FORMAT`; a server whose blocks are in
  another format sends columns only.

A stock BTrDB server answers gRPC UNIMPLEMENTED; that is remembered per client, whose raw reads
then use (Arrow)RawValues (:func:`raw_block_tables` raises :class:`Unsupported` before yielding
anything). Clients that route through proxies use the per-stream RPCs, as for MultiAlignedWindows.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator
from uuid import UUID

import numpy as np
import pyarrow as pa

from pingthings._proto.pingthings.platform.v1 import RawBlocksParams
from pingthings.timeseries._rpc import PLATFORM_SERVICE, CallTarget, call_stream
from pingthings.timeseries.exceptions import CorruptReplyError, NotImplementedByServerError, raise_for_status
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import points as wire_points
from pingthings.wire.blocks import BLOCK_FORMAT
from pingthings.wire.blocks.checked import BadBlock, checked_view
from pingthings.wire.blocks.leaf_codec import LeafView, decode_views
from pingthings.wire.protowire import LEN, VARINT, as_byteview, read_key, read_length, read_varint, skip_field

_METHOD = "RawBlocks"
_GRPC_UNIMPLEMENTED = 12
#: Most points decoded in one batch: the batch's temporary arrays stay in a core's L2 cache (the
#: engine measured 128k-point batches as fastest).
BATCH_POINTS = 1 << 17
#: The block formats this client decodes.
FORMATS = (BLOCK_FORMAT,)

#: Clients whose server answered UNIMPLEMENTED: they use the standard raw RPCs from then on.
_unsupported: weakref.WeakSet[object] = weakref.WeakSet()


def disable(client: CallTarget) -> None:
    """Make ``client`` use the standard raw RPCs ((Arrow)RawValues) from now on."""
    _unsupported.add(client)


class Unsupported(Exception):
    """The server does not offer RawBlocks (nothing was read)."""


def offered(client: CallTarget) -> bool:
    """False once ``client``'s server is known to lack RawBlocks, or when calls may go to proxies."""
    return client not in _unsupported and not client.proxy_endpoints


class _Stored:
    """A stored-block piece: the block, the slots wanted, their point count, its index in the read."""

    __slots__ = ("block", "count", "index", "slots", "view")

    def __init__(self, block: memoryview, slots: memoryview, count: int, index: int) -> None:
        self.block = block
        self.slots = slots
        self.count = count
        self.index = index
        self.view: LeafView | None = None


Columns = tuple[np.ndarray, np.ndarray]
Piece = _Stored | Columns


class _Reader:
    """Decodes the messages of one RawBlocks call, in order."""

    def __init__(self, label: str, start: int, end: int) -> None:
        self.label = label
        self.start = start
        self.end = end
        self.pieces = 0
        self.version = 0

    def _corrupt(self, index: int, problem: str) -> CorruptReplyError:
        return CorruptReplyError(f"stream {self.label}: RawBlocks piece #{index} of the read: {problem}")

    def _piece(self, data: memoryview | bytes, pos: int, end: int) -> Piece:
        index = self.pieces
        self.pieces += 1
        block = slots = times = values = None
        count = -1
        while pos < end:
            field, wire_type, pos = read_key(data, pos, end)
            if wire_type == LEN and field in (1, 2, 4, 5):
                lo, pos = read_length(data, pos, end, field)
                part = memoryview(data)[lo:pos]
                if field == 1:
                    block = part
                elif field == 2:
                    slots = part
                elif field == 4:
                    times = part
                else:
                    values = part
            elif field == 3 and wire_type == VARINT:
                count, pos = read_varint(data, pos, end)
            else:
                pos = skip_field(data, pos, end, field, wire_type)
        if block is not None:
            if slots is None or not len(slots) or count < 0:
                raise self._corrupt(index, "a stored block without its slots and count")
            return _Stored(block, slots, count, index)
        times = times if times is not None else memoryview(b"")
        values = values if values is not None else memoryview(b"")
        if len(times) != len(values) or len(times) % 8:
            raise self._corrupt(index, f"columns of {len(times)} and {len(values)} bytes")
        return np.frombuffer(times, dtype="<i8"), np.frombuffer(values, dtype="<f8")

    def _check(self, piece: _Stored, block_format: int) -> LeafView:
        if block_format not in FORMATS:
            raise self._corrupt(piece.index, f"block format {block_format}, not one of {FORMATS} asked for")
        try:
            view = checked_view(piece.block)
        except BadBlock as exc:
            raise self._corrupt(piece.index, str(exc)) from None
        slots = np.frombuffer(piece.slots, dtype=np.uint8)
        if int(slots.max()) >= 64 or (slots.size > 1 and not (slots[1:] > slots[:-1]).all()):
            raise self._corrupt(piece.index, "slots are not increasing slot numbers below 64")
        if view.bounds is None:
            held = view.size
        else:
            held = int((view.bounds[slots.astype(np.int64) + 1] - view.bounds[slots]).sum())
        if held != piece.count:
            problem = f"the block's slots hold {held} points, the server said {piece.count}"
            raise self._corrupt(piece.index, problem)
        return view

    def message(self, payload: bytes | memoryview) -> tuple[np.ndarray, np.ndarray]:
        """The points of one reply message, clipped to the read's range (fresh arrays)."""
        data = as_byteview(payload)
        pos, size = 0, len(data)
        block_format = 0
        pieces: list[Piece] = []
        while pos < size:
            field, wire_type, pos = read_key(data, pos, size)
            if field == 1 and wire_type == LEN:
                lo, pos = read_length(data, pos, size, field)
                stat = wire_points.decode_status(data[lo:pos])
                raise_for_status(stat.code, stat.msg)
            elif field == 2 and wire_type == VARINT:
                self.version, pos = read_varint(data, pos, size)
            elif field == 3 and wire_type == VARINT:
                block_format, pos = read_varint(data, pos, size)
            elif field == 4 and wire_type == LEN:
                lo, pos = read_length(data, pos, size, field)
                pieces.append(self._piece(data, lo, pos))
            else:
                pos = skip_field(data, pos, size, field, wire_type)
        return self._points(pieces, block_format)

    def _points(self, pieces: list[Piece], block_format: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode and place every piece's points, in order, into two fresh arrays; then clip."""
        total = sum(p.count if isinstance(p, _Stored) else p[0].size for p in pieces)
        out = (np.empty(total, dtype=np.int64), np.empty(total, dtype=np.float64))
        pos = 0
        run: list[_Stored] = []  # consecutive stored pieces, decoded together
        for piece in pieces:
            if isinstance(piece, _Stored):
                piece.view = self._check(piece, block_format)
                run.append(piece)
                continue
            pos = self._decode_run(run, out, pos)
            run = []
            n = piece[0].size
            out[0][pos : pos + n] = piece[0]
            out[1][pos : pos + n] = piece[1]
            pos += n
        self._decode_run(run, out, pos)
        out_t, out_v = out
        if total > 1 and bool((out_t[1:] < out_t[:-1]).any()):
            first = pieces[0].index if isinstance(pieces[0], _Stored) else self.pieces - len(pieces)
            raise self._corrupt(first, "the message's times are not in order")
        a, b = np.searchsorted(out_t, [self.start, self.end])
        return out_t[a:b], out_v[a:b]

    def _decode(self, stored: list[_Stored], out: Columns | None) -> Columns:
        try:
            with np.errstate(all="ignore"):  # numbers are numbers: only the structure can be checked
                return decode_views([p.view for p in stored], out)  # type: ignore[misc]
        except Exception as exc:  # the checks passed, yet the decoder failed: say where
            first, last = stored[0].index, stored[-1].index
            raise self._corrupt(first, f"blocks #{first}-#{last} do not decode: {exc}") from None

    def _decode_run(self, run: list[_Stored], out: Columns, pos: int) -> int:
        """Decode consecutive stored pieces in batches of at most BATCH_POINTS decoded points; a
        batch whose blocks are all wanted whole is decoded straight into ``out``."""
        i = 0
        while i < len(run):
            j, size, want = i, 0, 0
            while j < len(run) and (j == i or size + run[j].view.size <= BATCH_POINTS):  # type: ignore[union-attr]
                size += run[j].view.size  # type: ignore[union-attr]
                want += run[j].count
                j += 1
            batch = run[i:j]
            if size == want:
                self._decode(batch, (out[0][pos : pos + want], out[1][pos : pos + want]))
                pos += want
            else:
                pos = self._place(batch, self._decode(batch, None), out, pos)
            i = j
        return pos

    @staticmethod
    def _place(batch: list[_Stored], decoded: Columns, out: Columns, pos: int) -> int:
        """Copy the wanted slots' points of a decoded batch into ``out`` from ``pos`` on."""
        base = 0
        for piece in batch:
            view = piece.view
            assert view is not None
            spans = [(0, view.size)] if view.bounds is None else _spans(view.bounds, piece)
            for i, j in spans:
                out[0][pos : pos + j - i] = decoded[0][base + i : base + j]
                out[1][pos : pos + j - i] = decoded[1][base + i : base + j]
                pos += j - i
            base += view.size
        return pos


def _spans(bounds: np.ndarray, piece: _Stored) -> list[tuple[int, int]]:
    """Where the wanted slots' points lie in a group block: one span when they are contiguous."""
    slots = np.frombuffer(piece.slots, dtype=np.uint8).tolist()
    i, j = int(bounds[slots[0]]), int(bounds[slots[-1] + 1])
    if j - i == piece.count:
        return [(i, j)]
    return [(int(bounds[s]), int(bounds[s + 1])) for s in slots]


async def raw_block_tables(
    client: CallTarget, uuid: UUID, start: int, end: int, version: int
) -> AsyncGenerator[pa.Table, None]:
    """One ``(time, value)`` Table per RawBlocks reply message (empty ones included).

    Raises
    ------
    Unsupported
        The server lacks RawBlocks (before anything is yielded); the client is remembered.
    CorruptReplyError
        A block or piece the client cannot decode.
    """
    request = RawBlocksParams(
        uuid=uuid.bytes, start=start, end=end, version_major=version, block_formats=list(FORMATS)
    )
    reader = _Reader(str(uuid), start, end)
    answered = False
    try:
        async with call_stream(client, _METHOD, request, service=PLATFORM_SERVICE) as messages:
            async for payload in messages:
                answered = True
                yield wire_arrow.raw_table(*reader.message(payload))
    except NotImplementedByServerError as exc:
        if exc.code != _GRPC_UNIMPLEMENTED or answered:
            raise
        _unsupported.add(client)
        raise Unsupported() from None
