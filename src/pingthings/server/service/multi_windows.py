"""MultiAlignedWindows: the aligned windows of many streams in one server-streaming call.

A StreamSet of a thousand streams asking for a few windows each costs a thousand calls when asked
stream by stream; most of that is per-call overhead on both sides, not engine work. This RPC takes
the streams (and their versions) in one request and answers each from the same engine calls as
AlignedWindows, so the results, versions and errors are exactly those of the per-stream path:

* streams are taken in batches of :data:`BATCH`; within a batch, every stream whose answer is
  small and cached comes from memory in the event loop (see :mod:`.stat_reads`; other calls get a
  turn every :data:`LOOP_BUDGET` seconds of such work), and the others
  (buffered inserts to merge first, a version other than the latest, blocks to read) are computed
  together in one worker thread: at most one hop per batch;
* a stream's error (hidden from this caller, missing, bad version) is put in its entry's ``stat``
  and the other streams are still answered;
* replies are bounded: at most :data:`WINDOWS_PER_MESSAGE` windows and :data:`ENTRIES_PER_MESSAGE`
  entries per message, a stream with more windows being split over several entries.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.lowlevel

from pingthings._proto.pingthings.platform.v1 import MultiAlignedWindowsParams
from pingthings._proto.v5api import Status
from pingthings.server.errors import WrongArgs
from pingthings.server.service import payloads
from pingthings.server.service.convert import blocking, require_uuid
from pingthings.server.service.fanout import distinct_streams
from pingthings.server.service.replies import status_of
from pingthings.server.service.visibility import require_visible
from pingthings.wire.protowire import VARINT, encode_key, encode_len_field, encode_varint

#: Streams answered between two yields to the event loop (and per worker-thread hop).
BATCH = 64
#: Seconds of cached answers computed in the event loop before other calls get a turn (one
#: cached answer is ~0.1 ms typically, ~2 ms at the in-memory bound).
LOOP_BUDGET = 0.002
#: Most windows in one reply message (as AlignedWindows sends per message).
WINDOWS_PER_MESSAGE = 5000
#: Most stream entries in one reply message (streams without windows still take an entry).
ENTRIES_PER_MESSAGE = 256

_STREAMS_FIELD = 2
_INDEX_KEY = encode_key(5, VARINT)

Outcome = tuple[int, Any] | BaseException  # (version, StatWindows) or the stream's error


def _windows_or_error(engine: Any, uuid: bytes, start: int, end: int, pw: int, version: int) -> Outcome:
    try:
        return engine.aligned_windows(uuid, start, end, pw, version)  # type: ignore[no-any-return]
    except Exception as exc:
        return exc


def _compute_misses(
    engine: Any, work: list[tuple[bytes, int]], start: int, end: int, pw: int
) -> list[Outcome]:
    """The streams not answerable from memory, in one worker thread."""
    return [_windows_or_error(engine, uuid, start, end, pw, version) for uuid, version in work]


def _entries(index: int, outcome: Outcome) -> Iterator[tuple[bytes, int]]:
    """``(encoded StreamWindows, window count)`` of one stream, split every WINDOWS_PER_MESSAGE."""
    head = _INDEX_KEY + encode_varint(index)
    if isinstance(outcome, BaseException):
        stat: Status = status_of(outcome)
        yield head + encode_len_field(1, bytes(stat)), 0
        return
    version, windows = outcome
    total = len(windows.time)
    for lo in range(0, max(total, 1), WINDOWS_PER_MESSAGE):
        hi = min(total, lo + WINDOWS_PER_MESSAGE)
        yield head + payloads.encode_stat_points(version, windows, lo, hi), hi - lo


class MultiWindows:
    """The MultiAlignedWindows handler.

    Parameters
    ----------
    meta
        The metadata store (hidden streams).
    engine
        The engine.
    max_streams
        Most distinct streams per request.
    """

    def __init__(self, meta: Any, engine: Any, max_streams: int) -> None:
        self._meta = meta
        self._engine = engine
        self._max_streams = max_streams

    def _checked(self, raw: bytes) -> bytes | BaseException:
        try:
            return require_visible(self._meta, require_uuid(raw))
        except Exception as exc:
            return exc

    async def _batch(self, keys: list[tuple[bytes, int]], start: int, end: int, pw: int) -> list[Outcome]:
        outcomes: list[Outcome | None] = []
        misses: list[int] = []
        since = time.perf_counter()
        for raw, version in keys:
            if time.perf_counter() - since > LOOP_BUDGET:
                await anyio.lowlevel.checkpoint()  # let other calls run between cached answers
                since = time.perf_counter()
            uuid = self._checked(raw)
            if isinstance(uuid, BaseException):
                outcomes.append(uuid)
                continue
            try:
                found = self._engine.aligned_windows_in_memory(uuid, start, end, pw, version)
            except Exception as exc:
                found = exc
            if found is None:
                misses.append(len(outcomes))
            outcomes.append(found)
        if misses:
            work = [keys[i] for i in misses]
            computed = await blocking(_compute_misses, self._engine, work, start, end, pw)
            for i, outcome in zip(misses, computed, strict=True):
                outcomes[i] = outcome
        else:
            await anyio.lowlevel.checkpoint()
        return [o for o in outcomes if o is not None]

    async def multi_aligned_windows(self, request: MultiAlignedWindowsParams) -> AsyncIterator[bytes]:
        """Stream the windows of every requested stream in bounded reply messages."""
        raws = list(request.uuids)
        if not raws:
            raise WrongArgs("MultiAlignedWindows needs at least one uuid")
        versions = [int(v) for v in request.version_majors]
        if versions and len(versions) != len(raws):
            raise WrongArgs(f"{len(raws)} uuids but {len(versions)} versions")
        uuids, versions = distinct_streams(
            raws, versions or [0] * len(raws), self._max_streams, "MultiAlignedWindows"
        )
        keys = list(zip(uuids, versions, strict=True))
        start, end, pw = request.start, request.end, request.point_width
        pending: list[bytes] = []
        windows = 0
        for lo in range(0, len(keys), BATCH):
            outcomes = await self._batch(keys[lo : lo + BATCH], start, end, pw)
            for offset, outcome in enumerate(outcomes):
                for entry, count in _entries(lo + offset, outcome):
                    if pending and (
                        windows + count > WINDOWS_PER_MESSAGE or len(pending) >= ENTRIES_PER_MESSAGE
                    ):
                        yield b"".join(pending)
                        pending, windows = [], 0
                    pending.append(encode_len_field(_STREAMS_FIELD, entry))
                    windows += count
        if pending:
            yield b"".join(pending)
