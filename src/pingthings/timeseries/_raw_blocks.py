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
* the request lists every block format up to :data:`~pingthings.wire.blocks.BLOCK_FORMAT` (a
  reader of format ``f`` reads formats ``1..f``); a server whose blocks are in another format sends
  columns only.

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
from pingthings.wire.blocks.checked import BadBlock, checked_view, increasing_slots
from pingthings.wire.blocks.leaf_codec import LeafView, decode_views
from pingthings.wire.protowire import (
    LEN,
    VARINT,
    as_byteview,
    read_key,
    read_length,
    read_varint,
    skip_field,
)

_METHOD = "RawBlocks"
#: One-byte keys of a piece's length-delimited fields (block, slots, times, values) -> field number.
_PIECE_LEN_KEYS = {(1 << 3) | LEN: 1, (2 << 3) | LEN: 2, (4 << 3) | LEN: 4, (5 << 3) | LEN: 5}
#: One-byte key of a piece's point count (field 3, a varint).
_COUNT_KEY = (3 << 3) | VARINT
_GRPC_UNIMPLEMENTED = 12
#: Most points decoded in one batch: the batch's temporary arrays stay in a core's L2 cache (the
#: engine measured 128k-point batches as fastest).
BATCH_POINTS = 1 << 17
#: The block formats this client decodes.
FORMATS = tuple(range(1, BLOCK_FORMAT + 1))

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
        view = data if isinstance(data, memoryview) else memoryview(data)
        while pos < end:
            key = data[pos]
            field = _PIECE_LEN_KEYS.get(key, 0)
            if field:  # the usual one-byte keys: no general key reader
                lo, pos = read_length(data, pos + 1, end, field)
            elif key == _COUNT_KEY:
                count, pos = read_varint(data, pos + 1, end)
                continue
            else:
                field, wire_type, pos = read_key(data, pos, end)
                if field == 3 and wire_type == VARINT:
                    count, pos = read_varint(data, pos, end)
                    continue
                if wire_type != LEN or field not in (1, 2, 4, 5):
                    pos = skip_field(data, pos, end, field, wire_type)
                    continue
                lo, pos = read_length(data, pos, end, field)
            part = view[lo:pos]
            if field == 1:
                block = part
            elif field == 2:
                slots = part
            elif field == 4:
                times = part
            else:
                values = part
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
        slots = bytes(piece.slots)
        grouped = view.slots
        if grouped == slots:  # every slot of a group, checked with the group (the usual piece)
            held = view.size
        elif not increasing_slots(slots):
            raise self._corrupt(piece.index, "slots are not increasing slot numbers below 64")
        elif grouped is None:
            held = view.size
        else:
            ends = view.bounds.tolist()  # type: ignore[union-attr]
            held = sum(ends[s + 1] - ends[s] for s in slots)
        if held != piece.count:
            problem = f"the block's slots hold {held} points, the server said {piece.count}"
            raise self._corrupt(piece.index, problem)
        return view

    def message(self, payload: bytes | memoryview) -> list[Columns]:
        """The points of one reply message, clipped to the read's range: consecutive runs of them
        as views of one fresh pair of arrays (a run ends where a block holds points the read does
        not want, which are left out without copying the rest)."""
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

    def _points(self, pieces: list[Piece], block_format: int) -> list[Columns]:
        """The wanted points of every piece, in order, as runs: the stored blocks decoded into one
        fresh pair of arrays, the columns viewed in the message (not copied: the server aligns
        them to 8 bytes within the message, which itself may lie anywhere in the received bytes,
        as the IPC buffers of an ArrowRawValues reply do); then clipped."""
        total = 0
        for piece in pieces:
            if isinstance(piece, _Stored):
                piece.view = self._check(piece, block_format)
                total += piece.view.size
        out = (np.empty(total, dtype=np.int64), np.empty(total, dtype=np.float64))
        first = self.pieces - len(pieces)
        segments: list[Columns] = []
        wanted: list[tuple[int, int]] = []  # spans of ``out`` the read wants, in order
        pos = 0
        run: list[_Stored] = []  # consecutive stored pieces, decoded together
        for piece in pieces:
            if isinstance(piece, _Stored):
                run.append(piece)
                continue
            pos = self._decode_run(run, out, pos, wanted)
            segments += self._ordered(self._segments(out, wanted), first)
            run, wanted = [], []
            if piece[0].size:
                segments.append(piece)  # views of the message, as the Arrow path's IPC buffers
        self._decode_run(run, out, pos, wanted)
        segments += self._ordered(self._segments(out, wanted), first)
        for k in range(1, len(segments)):
            if segments[k - 1][0][-1] > segments[k][0][0]:
                raise self._corrupt(first, "the message's times are not in order")
        return self._clip(segments)

    def _ordered(self, decoded: list[Columns], first: int) -> list[Columns]:
        """``decoded`` (runs of points decoded here), once their times are found in order (columns
        are the server's own arrays, trusted as the Arrow path trusts its IPC buffers)."""
        for t, _ in decoded:
            if t.size > 1 and bool((t[1:] < t[:-1]).any()):
                raise self._corrupt(first, "the message's times are not in order")
        return decoded

    @staticmethod
    def _segments(out: Columns, wanted: list[tuple[int, int]]) -> list[Columns]:
        """Views of ``out`` for the wanted spans, adjacent spans joined."""
        joined: list[list[int]] = []
        for i, j in wanted:
            if j <= i:
                continue
            if joined and joined[-1][1] == i:
                joined[-1][1] = j
            else:
                joined.append([i, j])
        return [(out[0][i:j], out[1][i:j]) for i, j in joined]

    def _clip(self, segments: list[Columns]) -> list[Columns]:
        """The segments' points inside ``[start, end)`` (only the ends of a read reach outside; a
        segment is searched only when its first or last time says it must be cut)."""
        while segments and segments[0][0][-1] < self.start:
            segments = segments[1:]
        while segments and segments[-1][0][0] >= self.end:
            segments = segments[:-1]
        if segments and segments[0][0][0] < self.start:
            t, v = segments[0]
            a = int(np.searchsorted(t, self.start))
            segments[0] = (t[a:], v[a:])
        if segments and segments[-1][0][-1] >= self.end:
            t, v = segments[-1]
            b = int(np.searchsorted(t, self.end))
            segments[-1] = (t[:b], v[:b])
        return [s for s in segments if s[0].size]

    def _decode(self, stored: list[_Stored], out: Columns) -> None:
        try:
            with np.errstate(all="ignore"):  # numbers are numbers: only the structure can be checked
                decode_views([p.view for p in stored], out)  # type: ignore[misc]
        except Exception as exc:  # the checks passed, yet the decoder failed: say where
            first, last = stored[0].index, stored[-1].index
            raise self._corrupt(first, f"blocks #{first}-#{last} do not decode: {exc}") from None

    def _decode_run(self, run: list[_Stored], out: Columns, pos: int, wanted: list[tuple[int, int]]) -> int:
        """Decode consecutive stored pieces straight into ``out`` from ``pos`` on, in batches of at
        most BATCH_POINTS points (the engine's batch size), noting the spans the read wants."""
        i = 0
        while i < len(run):
            j, size = i, 0
            while j < len(run) and (j == i or size + run[j].view.size <= BATCH_POINTS):  # type: ignore[union-attr]
                size += run[j].view.size  # type: ignore[union-attr]
                j += 1
            self._decode(run[i:j], (out[0][pos : pos + size], out[1][pos : pos + size]))
            for piece in run[i:j]:
                view = piece.view
                assert view is not None
                if view.size == piece.count or view.bounds is None:
                    wanted.append((pos, pos + view.size))
                else:
                    wanted.extend((pos + a, pos + b) for a, b in _spans(view.bounds, piece))
                pos += view.size
            i = j
        return pos


def _concat_tables(tables: list[pa.Table]) -> pa.Table:
    """The segments of one message as one Table (its chunks; an empty one for none)."""
    if not tables:
        return wire_arrow.raw_table(np.empty(0, np.int64), np.empty(0, np.float64))
    return pa.concat_tables(tables)


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
                segments = reader.message(payload)
                if len(segments) == 1:
                    yield wire_arrow.raw_table(*segments[0])
                else:
                    yield _concat_tables([wire_arrow.raw_table(*s) for s in segments])
    except NotImplementedByServerError as exc:
        if exc.code != _GRPC_UNIMPLEMENTED or answered:
            raise
        _unsupported.add(client)
        raise Unsupported() from None
