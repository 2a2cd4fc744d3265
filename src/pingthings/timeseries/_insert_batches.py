"""Sending one insert as batches the server accepts, and saying what was written when it fails.

* The batch size follows the server: BTrDB 4 servers refuse more than 25,000 points per Insert
  (``[414] Insert too big``), v5 servers take 50,000. The client picks it from Info's major version;
  ``connect(insert_batch_size=...)`` and ``insert(..., batch_size=...)`` override it.
* The first batch goes out alone. If the server refuses it as too big, the batch is halved and sent
  again, before anything else; the size that worked is used for the rest of the insert and remembered
  by the client for later inserts.
* Only then do the other batches go out, concurrently under the client's concurrency limit. A request
  the server refuses outright (unknown stream, bad value) therefore writes nothing.
* If a batch fails after others were written, :class:`~pingthings.timeseries.exceptions.PartialInsertError`
  lists the acknowledged batches (time range, points, version); the failure is its ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

import numpy as np

from pingthings.timeseries import _data_calls as dc
from pingthings.timeseries._fanout import gather
from pingthings.timeseries._insert import batch_bounds
from pingthings.timeseries.exceptions import (
    InvalidArgumentError,
    PartialInsertError,
    PingThingsError,
    WrittenRange,
)
from pingthings.wire.limits import INSERT_BATCH_SIZE
from pingthings.wire.status import StatusCode

if TYPE_CHECKING:
    from pingthings.timeseries._rpc import CallTarget

V4_INSERT_BATCH_SIZE = 25_000
"""Most points a BTrDB 4 server accepts in one Insert (its ``MaxInsertSize``)."""

V5_INSERT_BATCH_SIZE = INSERT_BATCH_SIZE
"""Most points a v5 server accepts in one Insert."""


def batch_size_for_version(major_version: int) -> int:
    """The Insert batch size for a server whose Info reports ``major_version``."""
    return V4_INSERT_BATCH_SIZE if major_version <= 4 else V5_INSERT_BATCH_SIZE


def check_batch_size(value: object, what: str = "insert_batch_size") -> int:
    """A batch size given by the user: a positive int.

    Raises
    ------
    InvalidArgumentError
        For anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise InvalidArgumentError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _too_big(exc: PingThingsError) -> bool:
    return exc.code == StatusCode.INSERT_TOO_BIG


class _Insert:
    """The state of one insert: the arrays, what was acknowledged, the batch size learned."""

    def __init__(
        self,
        client: CallTarget,
        uuid: UUID,
        times: np.ndarray,
        values: np.ndarray,
        policy: int,
        batch_size: int,
    ) -> None:
        self.client, self.uuid = client, uuid
        self.times, self.values, self.policy = times, values, policy
        self.batch_size = batch_size
        self.written: list[WrittenRange] = []

    async def send(self, lo: int, hi: int) -> int:
        """Insert rows ``[lo, hi)``; on 414 halve the batch size and send the rows again in pieces of
        that size, in order."""
        try:
            version = await dc.insert(
                self.client, self.uuid, self.times[lo:hi], self.values[lo:hi], self.policy
            )
        except PingThingsError as exc:
            if not _too_big(exc):
                raise
            half = (hi - lo) // 2
            parts = batch_bounds(self.times[lo:hi], half) if half >= 1 else [(0, hi - lo)]
            if len(parts) < 2:
                raise InvalidArgumentError(
                    f"the server refused {hi - lo} points in one Insert as too big ({exc}) and they "
                    "cannot be split further (one point, or points that share one timestamp)",
                    exc.code,
                ) from exc
            self.batch_size = min(self.batch_size, max(b - a for a, b in parts))
            version, pos = 0, lo
            while pos < hi:  # in order, each piece cut with the smallest size learned so far
                end = pos + batch_bounds(self.times[pos:hi], self.batch_size)[0][1]
                version = max(version, await self.send(pos, end))
                pos = end
            return version
        self.written.append(WrittenRange(int(self.times[lo]), int(self.times[hi - 1]), hi - lo, version))
        return version

    def partial_error(self, error: PingThingsError) -> PingThingsError:
        """``error`` itself when nothing was written, else a PartialInsertError listing what was."""
        if not self.written:
            return error
        written = sorted(self.written, key=lambda r: r.start)
        total = sum(r.points for r in written)
        return PartialInsertError(
            f"insert into stream {self.uuid} failed after {total} of {self.times.size} points were "
            f"written in {len(written)} batch(es) (see the exception's 'written' attribute): {error}",
            written,
            error,
        )


async def insert_in_batches(
    client: CallTarget,
    uuid: UUID,
    times: np.ndarray,
    values: np.ndarray,
    policy: int,
    batch_size: int,
) -> tuple[int, int]:
    """Insert sorted ``times``/``values`` (non-empty) in batches of ``batch_size`` rows.

    Returns
    -------
    tuple
        The stream's version after the insert, and the batch size that worked (smaller than asked
        when the server refused a batch as too big).

    Raises
    ------
    PartialInsertError
        A batch failed after others had been written.
    PingThingsError
        The first batch failed and nothing was written.
    """
    job = _Insert(client, uuid, times, values, policy, batch_size)
    try:
        first_hi = batch_bounds(times, batch_size)[0][1]
        version = await job.send(0, first_hi)
        rest = [(first_hi + lo, first_hi + hi) for lo, hi in batch_bounds(times[first_hi:], job.batch_size)]
        if rest:
            versions = await gather(
                [(job.send, lo, hi) for lo, hi in rest], workers=int(client.limiter.total_tokens)
            )
            version = max(version, *versions)
    except PingThingsError as exc:
        error = job.partial_error(exc)
        if error is exc:
            raise
        raise error from exc
    return version, job.batch_size
