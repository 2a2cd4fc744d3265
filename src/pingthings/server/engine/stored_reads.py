"""Raw reads handed out as the tree stores them: encoded blocks where the block is not decoded in
memory, columns where it is (the RawBlocks RPC sends these, and the client decodes the blocks).

A cold raw read spends most of its server time decoding blocks (about half) and sending 16 bytes a
point (about a third). Handing out each uncached leaf block's stored bytes instead costs one SQL
query per batch of blocks and ~3-5 bytes a point to send; the reader decodes them. Blocks that are
decoded in the cache already go out as columns: a cached block costs the sender a memory reference,
where re-reading its encoded bytes would make the reader decode it again (measured, see
``docs/architecture.md``, cold reads).

Each run of leaf references to one block becomes one piece, in time order:

* :class:`StoredPiece`: the block's bytes, the slots of the run (a plain leaf has the one slot it
  sits in) and how many points those slots hold; the reader decodes it, takes those slots' points in
  slot order and clips them to the read's range (only the first and last blocks of a read reach
  outside it);
* :class:`ColumnPiece`: time and value views of a decoded block's points (read-only when cached),
  already clipped.

A block is decoded here and sent as columns also when the reader cannot take it as stored: blocks
are not wanted at all (``send_blocks`` false: the reader does not decode this encoding), or the
block is larger than a message may be, or declares a larger body than a reader accepts.

A share of the uncached batches (:data:`SERVER_SHARE` of their points, spread evenly by
:class:`ServerShare`) is decoded here too and sent as columns: a cold read's decode then runs on
both the server's and the reader's core instead of the reader's alone, and those blocks are cached
at once (measured on a loaded 2-core machine, 10^7 points: 22-25 against 14-17 Mpt/s best, same runs).

The pieces are grouped into messages of at most ``max_bytes`` bytes of pieces (a column piece is
split across messages where needed). When the read is one the cache admits (as for the other raw
reads), the blocks sent encoded are handed to the late admission after the last message, to be
decoded into the cache in the background (:mod:`.late_admission`), so a second read of the same
data is served from memory; blocks still waiting there that this read decodes itself are taken
off its queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from pingthings.server.engine.blocks import BlockReader, PointBlock, _run_batches, _runs
from pingthings.server.engine.late_admission import LateAdmission
from pingthings.server.engine.query import LeafRefs, clip
from pingthings.wire.blocks.checked import MAX_BODY_BYTES, declared_body_size

#: Share of the uncached points that the server decodes itself (sent as columns and admitted to the
#: cache at once) while the reader decodes the rest, so that both processes work during a cold read
#: and the cache warms as it goes (see :func:`server_batches`).
SERVER_SHARE = 0.4
#: Most blocks fetched with one SQL query (and decoded in one batch when they are).
BATCH_BLOCKS = 128
#: Bytes a stored piece adds to its block in a message (protobuf keys and lengths, slots).
PIECE_OVERHEAD = 96


class StoredPiece(NamedTuple):
    """A block as stored, the slots of it the read wants (uint8 bytes) and how many points they hold."""

    block: bytes
    slots: bytes
    points: int


class ColumnPiece(NamedTuple):
    """Consecutive points as time and value views (``points`` in all)."""

    times: list[np.ndarray]
    values: list[np.ndarray]
    points: int


Piece = StoredPiece | ColumnPiece


def _slot_views(
    block: PointBlock, run_slots: np.ndarray, want: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The points of the slots ``run_slots`` of a decoded block (as :meth:`BlockReader.scan_runs`)."""
    if block.bounds is None:
        return [block.t], [block.v]
    s0, s1 = int(run_slots[0]), int(run_slots[-1])
    i, j = int(block.bounds[s0]), int(block.bounds[s1 + 1])
    if j - i == want:
        return [block.t[i:j]], [block.v[i:j]]
    ts, vs = [], []
    for slot in run_slots.tolist():
        i, j = int(block.bounds[slot]), int(block.bounds[slot + 1])
        ts.append(block.t[i:j])
        vs.append(block.v[i:j])
    return ts, vs


class _Messages:
    """Groups pieces into messages of at most ``max_bytes`` bytes of pieces."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.pieces: list[Piece] = []
        self.size = 0
        self.done: list[list[Piece]] = []

    def _close(self) -> None:
        if self.pieces:
            self.done.append(self.pieces)
            self.pieces, self.size = [], 0

    def stored(self, piece: StoredPiece) -> None:
        size = len(piece.block) + PIECE_OVERHEAD
        if self.size + size > self.max_bytes:
            self._close()
        self.pieces.append(piece)
        self.size += size

    def columns(self, ts: list[np.ndarray], vs: list[np.ndarray]) -> None:
        for t, v in zip(ts, vs, strict=True):
            pos = 0
            while pos < t.size:
                room = (self.max_bytes - self.size - PIECE_OVERHEAD) // 16
                if room <= 0 and self.pieces:
                    self._close()
                    continue
                room = max(room, 1)
                part = min(room, t.size - pos)
                last = self.pieces[-1] if self.pieces else None
                if isinstance(last, ColumnPiece):  # extend the open column piece
                    last.times.append(t[pos : pos + part])
                    last.values.append(v[pos : pos + part])
                    self.pieces[-1] = ColumnPiece(last.times, last.values, last.points + part)
                    self.size += 16 * part
                else:
                    self.pieces.append(ColumnPiece([t[pos : pos + part]], [v[pos : pos + part]], part))
                    self.size += 16 * part + PIECE_OVERHEAD
                pos += part

    def full(self) -> list[list[Piece]]:
        """The messages completed so far (taken)."""
        done, self.done = self.done, []
        return done

    def rest(self) -> list[list[Piece]]:
        """Every message left, the open one included."""
        self._close()
        return self.full()


class ServerShare:
    """Which batches of uncached blocks the server decodes itself, spread evenly over the read.

    Error diffusion over points: each batch of ``points`` uncached points adds ``share * points``
    to a credit; a batch is decoded here when the credit reaches half of it (and then costs the
    credit its points). So the first batch goes out stored (the reader starts at once), and over
    the read about ``share`` of the points are decoded here, never two long runs of either kind.
    """

    __slots__ = ("credit", "share")

    def __init__(self, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the server's share must be between 0 and 1, got {share}")
        self.share = share
        self.credit = 0.0

    def take(self, points: int) -> bool:
        """Whether the server decodes the next batch, of ``points`` uncached points."""
        if points <= 0:
            return False
        self.credit += self.share * points
        if self.share >= 1.0 or self.credit >= points / 2:
            self.credit -= points
            return True
        return False


def _points_of(missing: list[int], blocks: list[int], wants: list[int]) -> int:
    """Points the read wants from the ``missing`` blocks of a batch (``wants``: per block)."""
    if len(missing) == len(blocks):
        return sum(wants)
    gone = set(missing)
    return sum(w for a, w in zip(blocks, wants, strict=True) if a in gone)


def _sendable(block: bytes, max_bytes: int) -> bool:
    """Whether a reader may be sent this block as stored (it fits a message and its limits)."""
    return len(block) + PIECE_OVERHEAD <= max_bytes and declared_body_size(block) <= MAX_BODY_BYTES


def iter_stored_messages(
    reader: BlockReader,
    refs: LeafRefs,
    lo: int,
    hi: int,
    max_bytes: int,
    send_blocks: bool,
    late: LateAdmission | None = None,
    server_share: float | None = None,
) -> Iterator[list[Piece]]:
    """The pieces of the points with ``lo <= t < hi``, in time order, grouped into messages.

    Parameters
    ----------
    reader
        The block reader (its cache and store).
    refs
        The leaves overlapping the range (:func:`.query.leaves_with_counts`).
    lo, hi
        The range.
    max_bytes
        Most bytes of pieces in one message (a column piece counts 16 bytes a point).
    send_blocks
        Whether uncached blocks may go out as stored (False: every point as columns).
    late
        Handed the blocks sent as stored (addresses and bytes) once the last message is out, when
        the read is one the cache admits (see :mod:`.late_admission`); told of the blocks this read
        decoded itself, which an earlier read had left to it. None: no cache.
    server_share
        Share of the uncached points decoded here and sent as columns (admitted to the cache at
        once when the read is one the cache admits); None: :data:`SERVER_SHARE`.
    """
    addrs, slots, counts = refs
    runs = _runs(addrs)
    n_runs = runs.size - 1
    admitted = reader.admits(counts)
    sent: list[int] = []
    sent_raw: dict[int, bytes] = {}
    messages = _Messages(max_bytes)
    ours = ServerShare(SERVER_SHARE if server_share is None else server_share)
    for r, r_end in _run_batches(runs, counts, BATCH_BLOCKS):
        first = runs[r:r_end].tolist()
        ends = runs[r + 1 : r_end + 1].tolist()
        blocks = addrs[runs[r:r_end]].tolist()
        found: dict[int, PointBlock] = reader.cache.get_many(blocks) if reader.cache.capacity else {}  # type: ignore[assignment]
        missing = [a for a in blocks if a not in found]
        raw = reader.fetch_encoded(missing) if missing else {}
        wants = np.add.reduceat(counts[runs[r] : runs[r_end]], runs[r:r_end] - runs[r]).tolist()
        if send_blocks and missing and ours.take(_points_of(missing, blocks, wants)):
            local = missing
        else:
            local = [a for a in missing if not send_blocks or not _sendable(raw[a], max_bytes)]
        if local:
            found.update(reader.decode_encoded(local, raw, admitted))
            if late is not None and admitted:
                late.taken(local)  # decoded and cached here: the late admission skips them
        for k, (a, ra, rb) in enumerate(zip(blocks, first, ends, strict=True)):
            run_slots = slots[ra:rb]
            want = wants[k]
            block = found.get(a)
            if block is None:
                messages.stored(StoredPiece(raw[a], run_slots.astype(np.uint8).tobytes(), want))
                if admitted and late is not None:
                    sent.append(a)
                    sent_raw[a] = raw[a]
                continue
            ts, vs = _slot_views(block, run_slots, want)
            if r + k == 0 or r + k == n_runs - 1:  # only the first and last leaves reach outside
                clipped = [clip(t, v, lo, hi) for t, v in zip(ts, vs, strict=True)]
                ts, vs = [c[0] for c in clipped], [c[1] for c in clipped]
            messages.columns(ts, vs)
        yield from messages.full()
    yield from messages.rest()
    if sent and late is not None:
        late.submit(sent, sent_raw)
