"""Point RPCs of v5api.BTrDB: raw values, statistical windows, nearest, changes, insert, delete.

Point payloads never go through message classes: requests with points are decoded and replies
encoded by :mod:`.payloads` (the numpy codecs). Blocking engine calls run in worker threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np

from pingthings._proto import v5api
from pingthings.server.engine import MergePolicy
from pingthings.server.errors import InsertTooBig, InvalidPointWidth, WrongArgs
from pingthings.server.service import payloads
from pingthings.server.service.convert import blocking
from pingthings.server.service.ingest_writer import IngestWriter
from pingthings.server.service.prefetch import produced
from pingthings.server.service.stat_reads import aligned_windows_of, nearest_of
from pingthings.server.service.state import ServiceState
from pingthings.server.service.visibility import require_visible, visible_uuid
from pingthings.server.service.window_slices import windows_in_slices
from pingthings.wire.insert_messages import encode_insert_response
from pingthings.wire.limits import MAX_POINT_WIDTH

#: Points per RawValues / AlignedWindows / Windows message, as the v4 server sent.
POINTS_PER_MESSAGE = 5000
#: Ranges per Changes message, as the v4 server sent.
RANGES_PER_MESSAGE = 1000


#: The merge policies by wire number.
_POLICIES = {int(member.value): MergePolicy[member.name] for member in v5api.MergePolicy}


def _merge_policy(value: int) -> MergePolicy:
    policy = _POLICIES.get(value)
    if policy is None:  # betterproto2 turns an unknown number into a nameless pseudo-member
        choices = ", ".join(f"{number} ({p.name})" for number, p in sorted(_POLICIES.items()))
        raise WrongArgs(f"merge_policy: unknown value {value}; expected one of {choices}")
    return policy


async def apply_insert(
    state: ServiceState,
    uuid: bytes,
    times: np.ndarray,
    values: np.ndarray,
    merge_policy: int = 0,
    round_bits: int | None = None,
) -> int:
    """Insert points (shared by Insert and ArrowInsert) into a stream the caller may see (checked
    by the caller: :func:`.visibility.visible_uuid`): checks here, then the engine write,
    publication to subscribers and metadata bookkeeping by the ingest writer thread (see
    :mod:`.ingest_writer`). Returns the version the points are in."""
    count = len(times)
    if count > state.max_insert_points:
        raise InsertTooBig(f"insert of {count} points exceeds the limit of {state.max_insert_points}")
    if round_bits is not None and not 0 <= round_bits <= MAX_POINT_WIDTH:
        raise InvalidPointWidth(f"rounding bits must be within 0..{MAX_POINT_WIDTH}, got {round_bits}")
    policy = _merge_policy(merge_policy)
    if state.ingest is None:
        state.ingest = IngestWriter(state.engine, state.meta, state.hub)
    return await state.ingest.insert(uuid, times, values, policy, round_bits)


class PointHandlers:
    """Handlers for the RPCs that read or write points."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def raw_values(self, request: v5api.RawValuesParams) -> AsyncIterator[bytes]:
        """Stream the points in [start, end), chunk by chunk from the engine.

        Reading from cache the messages are produced between sends; otherwise one worker thread
        reads the engine and encodes each chunk's messages while the event loop sends the previous
        chunk's (see :mod:`.prefetch`).
        """
        uuid = visible_uuid(self.state.meta, request.uuid)
        engine = self.state.engine
        args = (uuid, request.start, request.end, request.version_major)
        version, chunk_iter = engine.iter_raw_values_in_memory(*args) or await blocking(
            engine.iter_raw_values, *args, decode_ahead=False
        )

        def encoded() -> Iterator[list[bytes]]:
            try:
                for times, values in chunk_iter:
                    yield [
                        payloads.encode_raw_values(
                            version, times[lo : lo + POINTS_PER_MESSAGE], values[lo : lo + POINTS_PER_MESSAGE]
                        )
                        for lo in range(0, len(times), POINTS_PER_MESSAGE)
                    ]
            finally:
                chunk_iter.close()

        sent = False
        batches = produced(encoded, cheap=chunk_iter.cached, gate=self.state.read_gate)
        try:
            async for batch in batches:
                for message in batch:
                    yield message
                    sent = True
        finally:
            await batches.aclose()
        if not sent:
            yield payloads.encode_raw_values(version, np.empty(0, np.int64), np.empty(0, np.float64))

    async def _stat_messages(self, version: int, windows: Any) -> AsyncIterator[bytes]:
        total = len(windows.time)
        if total == 0:
            yield payloads.encode_stat_points(version, windows, 0, 0)
            return
        for lo in range(0, total, POINTS_PER_MESSAGE):
            yield payloads.encode_stat_points(version, windows, lo, min(total, lo + POINTS_PER_MESSAGE))

    async def aligned_windows(self, request: v5api.AlignedWindowsParams) -> AsyncIterator[bytes]:
        """Stream the non-empty windows of width 2**pointWidth."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        version, windows = await aligned_windows_of(
            self.state.engine, uuid, request.start, request.end, request.point_width, request.version_major
        )
        async for message in self._stat_messages(version, windows):
            yield message

    async def windows(self, request: v5api.WindowsParams) -> AsyncIterator[bytes]:
        """Stream every window of the given width (empty windows have count 0)."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        if request.width == 0:
            raise InvalidPointWidth("window width must be at least 1 ns")
        if request.depth > MAX_POINT_WIDTH:
            raise InvalidPointWidth(f"depth must be within 0..{MAX_POINT_WIDTH}")
        slices = windows_in_slices(
            self.state.engine, uuid, request.start, request.end, request.width, request.version_major
        )
        async for version, windows in slices:
            async for message in self._stat_messages(version, windows):
                yield message

    async def nearest(self, request: v5api.NearestParams) -> bytes:
        """The first point at or after ``time`` (forward) or the last one before it (backward)."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        version, t, v = await nearest_of(
            self.state.engine, uuid, request.time, request.backward, request.version_major
        )
        return payloads.encode_nearest(version, int(t), float(v))

    async def changes(self, request: v5api.ChangesParams) -> AsyncIterator[bytes]:
        """Stream the time ranges that changed between two versions."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        version, starts, ends = await blocking(
            self.state.engine.changes, uuid, request.from_major, request.to_major, request.resolution
        )
        total = len(starts)
        for lo in range(0, max(total, 1), RANGES_PER_MESSAGE):
            hi = lo + RANGES_PER_MESSAGE
            yield payloads.encode_changes(version, starts[lo:hi], ends[lo:hi])

    async def insert(self, data: bytes) -> bytes:
        """Insert a batch of points (decoded by the numpy codec)."""
        request = payloads.decode_insert(data)
        require_visible(self.state.meta, request.uuid)
        version = await apply_insert(
            self.state,
            request.uuid,
            request.times,
            request.values,
            request.merge_policy,
            request.rounding_bits,
        )
        return encode_insert_response(version)

    async def delete(self, request: v5api.DeleteParams) -> v5api.DeleteResponse:
        """Delete the points in [start, end) in a new version."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        version = await blocking(self.state.engine.delete, uuid, request.start, request.end)
        return v5api.DeleteResponse(version_major=version)
