"""Live data: a subscription to the points inserted into streams, over the Subscribe RPC.

The server pushes every inserted batch of a subscribed stream as one Arrow table, in the order
it committed them. :class:`Subscription` is the async iterator over those batches; it also
reconnects when the connection drops.

What the protocol can and cannot promise after a dropped connection
--------------------------------------------------------------------
A ``SubscriptionResp`` carries no data version and the server does not acknowledge a
subscription, so nothing in the protocol says which inserts a lost connection missed. The
subscription therefore resumes by time: it remembers, per stream, the latest point time it has
delivered (the *watermark*; at the start, the stream's latest point). After reconnecting it

1. subscribes again, then reads the points after the watermark with ``raw_values`` and delivers
   them (inserts made while it was away);
2. when the first pushed batch of a stream arrives, reads the points between the watermark and
   that batch's first time (inserts that landed between step 1's read and the moment the new
   subscription took effect), and delivers the pushed points after the watermark.

For a stream whose points are inserted in increasing time order (a live feed) no point is lost
or repeated. Points inserted *out of order* while the subscription was reconnecting may be
missed (older than the watermark) or, rarely, delivered twice; without reconnects every
pushed batch is delivered exactly as the server sent it.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from uuid import UUID

import anyio
import numpy as np
import pyarrow as pa

from pingthings._proto import v5api
from pingthings.timeseries._fanout import gather
from pingthings.timeseries._rpc import method_path, translate_channel_error
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME
from pingthings.timeseries.exceptions import (
    ClientClosedError,
    ConnectionError,
    SubscriptionLagError,
    raise_for_status,
)
from pingthings.timeseries.transport import ChannelError
from pingthings.timeseries.transport.errors import GrpcStatusError
from pingthings.wire.status import StatusCode

if TYPE_CHECKING:
    from typing import Self

    from pingthings.timeseries._results import Point
    from pingthings.timeseries._rpc import CallTarget
    from pingthings.timeseries.transport.calls import BidiCall


class LiveStream(Protocol):
    """What a subscription needs of a stream (an ``AsyncStream`` is one)."""

    @property
    def uuid(self) -> UUID:
        """The stream's UUID."""
        ...

    @property
    def client(self) -> CallTarget:
        """The client the stream talks through."""
        ...

    async def latest(self, version: int = 0) -> Point | None:
        """The stream's last point."""
        ...

    async def raw_values(self, start: Any, end: Any, version: int = 0) -> pa.Table:
        """The points with ``start <= time < end``."""
        ...

__all__ = ["DEFAULT_RECONNECT_TIMEOUT", "LiveBatch", "StreamSubscription", "Subscription"]

DEFAULT_RECONNECT_TIMEOUT = 30.0
"""Seconds a subscription keeps trying to reconnect after its connection dropped."""

_GRPC_UNAVAILABLE = 14
_FIRST_RETRY_DELAY = 0.05
_MAX_RETRY_DELAY = 2.0
_SUBSCRIBE = method_path("Subscribe")


class LiveBatch(NamedTuple):
    """One batch of newly inserted points of one stream.

    Attributes
    ----------
    uuid
        The stream.
    table
        The points: ``time`` (``timestamp[ns, UTC]``) and ``value`` (float64), in the order
        they were inserted.
    """

    uuid: UUID
    table: pa.Table


def _times(table: pa.Table) -> np.ndarray:
    column = table.column("time").combine_chunks()
    return np.asarray(column.view(pa.int64()).to_numpy(zero_copy_only=False))


def _after(table: pa.Table, watermark: int) -> pa.Table:
    """The rows of ``table`` whose time is after ``watermark``."""
    times = _times(table)
    keep = times > watermark
    return table if keep.all() else table.filter(pa.array(keep))


class Subscription:
    """Async iterator of :class:`LiveBatch` for the streams it was opened on.

    Create it with :meth:`AsyncStream.subscribe
    <pingthings.timeseries.async_stream.AsyncStream.subscribe>` or :meth:`AsyncStreamSet.subscribe
    <pingthings.timeseries.async_streamset.AsyncStreamSet.subscribe>`. Iterating opens the call;
    :meth:`aclose` (or leaving ``async with``) ends it, and :meth:`stop` ends the iteration from
    any task of the same event loop.

    Parameters
    ----------
    streams
        The streams to watch (all of one client).
    reconnect_timeout
        Seconds to keep trying to reconnect after the connection dropped (0: never reconnect,
        raise ConnectionError at once).

    Raises
    ------
    SubscriptionLagError
        (from iteration) The consumer fell so far behind that the server ended the call.
    ConnectionError
        (from iteration) The connection dropped and could not be re-established in time.
    StreamNotFoundError
        (from iteration) A stream does not exist.
    """

    def __init__(
        self, streams: Sequence[LiveStream], reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT
    ) -> None:
        if not streams:
            raise ValueError("subscribe needs at least one stream")
        if isinstance(reconnect_timeout, bool) or not isinstance(reconnect_timeout, int | float):
            raise TypeError("reconnect_timeout must be a number of seconds")
        if not reconnect_timeout >= 0 or math.isinf(reconnect_timeout):
            raise ValueError(f"reconnect_timeout must be a finite number >= 0, not {reconnect_timeout}")
        self._streams = {s.uuid: s for s in streams}
        self._client = streams[0].client
        self._reconnect_timeout = float(reconnect_timeout)
        self._call: BidiCall | None = None
        self._pending: deque[LiveBatch] = deque()
        self._watermark: dict[UUID, int] = {}
        self._resuming: set[UUID] = set()
        self._scope: anyio.CancelScope | None = None
        self._started = False
        self._stopped = False
        self._reconnects = 0

    # ------------------------------------------------------------------ public
    @property
    def uuids(self) -> list[UUID]:
        """The streams watched."""
        return list(self._streams)

    @property
    def reconnects(self) -> int:
        """How many times the subscription re-established a dropped connection."""
        return self._reconnects

    def stop(self) -> None:
        """End the iteration: a waiting (or reconnecting) ``__anext__`` ends at once, after the
        batches already received, and the call is closed."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        """Stop and close the call (idempotent)."""
        self.stop()
        await self._drop_call()

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        """Open the call now (iteration would open it otherwise)."""
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the call and ask for the streams, if not done yet (idempotent).

        The server starts pushing a moment later: inserts that commit before it has processed
        the request are not delivered.
        """
        if not self._started and not self._stopped:
            await self._start()

    async def __anext__(self) -> LiveBatch:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._stopped:
                await self._drop_call()
                raise StopAsyncIteration
            if not self._started:
                await self._start()
                continue
            if self._call is None:
                with anyio.CancelScope() as scope:  # stop() may interrupt the reconnecting
                    self._scope = scope
                    try:
                        await self._reconnect()
                    finally:
                        self._scope = None
                continue
            payload = await self._receive()
            if payload is None:
                continue
            try:
                self._take(v5api.SubscriptionResp.parse(bytes(payload)))
            except BaseException:
                await self._drop_call()
                raise
            await self._resolve_resumed()

    # ------------------------------------------------------------------ the call
    async def _open_call(self) -> None:
        """Open the Subscribe call and ask for every stream."""
        if self._client.closed:
            raise ClientClosedError(f"the client for {self._client.endpoint} is closed; connect again")
        call = self._client.channel.bidi(_SUBSCRIBE)
        try:
            await call.__aenter__()
            update = v5api.SubscriptionUpdate(
                op=v5api.SubscriptionUpdateOp.ADD_UUIDS, uuid=[u.bytes for u in self._streams]
            )
            await call.send(bytes(update))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await call.aclose()
            raise
        self._call = call

    async def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(ChannelError):
                    await call.aclose()

    async def _start(self) -> None:
        try:
            await self._open_call()
        except ChannelError as exc:
            raise translate_channel_error(exc, self._client, _SUBSCRIBE) from exc  # type: ignore[arg-type]
        self._started = True
        streams = list(self._streams.values())
        latest = await gather([(s.latest,) for s in streams], [str(s.uuid) for s in streams])
        for stream, last in zip(streams, latest, strict=True):
            self._watermark[stream.uuid] = last.time if last is not None else MINIMUM_TIME - 1

    async def _receive(self) -> bytes | memoryview | None:
        """The next message, or None when the call ended (then reconnect) or was stopped."""
        assert self._call is not None
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                return await self._call.__anext__()
            except StopAsyncIteration:
                pass  # the server ended the call without an error (it is shutting down)
            except GrpcStatusError as exc:
                if exc.status != _GRPC_UNAVAILABLE:
                    raise translate_channel_error(exc, self._client, _SUBSCRIBE) from exc  # type: ignore[arg-type]
            except ChannelError:
                pass  # the connection dropped
            finally:
                self._scope = None
        if not self._stopped:
            await self._drop_call()
        return None

    def _take(self, message: v5api.SubscriptionResp) -> None:
        """Queue the batch carried by ``message`` (or raise for its status)."""
        stat = message.stat
        if stat is not None and stat.code:
            self._stopped = True
            if stat.code == StatusCode.RESOURCE_DEPLETED:
                raise SubscriptionLagError(stat.msg, stat.code)
            raise_for_status(stat.code, stat.msg)
        uuid = UUID(bytes=bytes(message.uuid))
        if uuid not in self._streams:
            return  # a batch for a stream removed a moment ago
        table = pa.ipc.open_stream(message.arrow_bytes).read_all()
        if uuid in self._resuming:
            self._pending.append(LiveBatch(uuid, table))  # resolved by _resolve_resumed
            return
        self._deliver(uuid, table)

    def _deliver(self, uuid: UUID, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._watermark[uuid] = max(self._watermark.get(uuid, MINIMUM_TIME - 1), int(_times(table).max()))
        self._pending.append(LiveBatch(uuid, table))

    # ------------------------------------------------------------------ resuming
    async def _reconnect(self) -> None:
        """Re-open the call after a drop, then deliver what was inserted meanwhile."""
        if self._reconnect_timeout == 0:
            raise ConnectionError(f"the subscription's connection to {self._client.endpoint} dropped")
        delay = _FIRST_RETRY_DELAY
        with anyio.move_on_after(self._reconnect_timeout) as deadline:
            while True:
                try:
                    await self._open_call()
                    await self._backfill()
                    break
                except (ChannelError, ConnectionError):
                    await self._drop_call()
                await anyio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY)
        if deadline.cancelled_caught:
            await self._drop_call()
            raise ConnectionError(
                f"the subscription's connection to {self._client.endpoint} dropped and could not be "
                f"re-established within {self._reconnect_timeout:g} s"
            )
        self._reconnects += 1

    async def _backfill(self) -> None:
        """Step 1 of resuming: deliver every point after each stream's watermark."""
        streams = [s for s in self._streams.values() if self._watermark[s.uuid] + 1 < MAXIMUM_TIME]
        tables = await gather(
            [(s.raw_values, self._watermark[s.uuid] + 1, MAXIMUM_TIME) for s in streams],
            [str(s.uuid) for s in streams],
        )
        for stream, table in zip(streams, tables, strict=True):
            self._deliver(stream.uuid, table)
        self._resuming = set(self._streams)

    async def _resolve_resumed(self) -> None:
        """Step 2 of resuming: for a stream's first pushed batch, fill the gap before it."""
        if not self._resuming or not any(b.uuid in self._resuming for b in self._pending):
            return
        ready: deque[LiveBatch] = deque()
        held_back = set(self._resuming)
        for batch in self._pending:
            uuid = batch.uuid
            if uuid not in held_back:
                ready.append(batch)  # already delivered through _deliver
                continue
            if uuid not in self._resuming:  # a later pushed batch of a stream resolved above
                if batch.table.num_rows:
                    self._watermark[uuid] = max(self._watermark[uuid], int(_times(batch.table).max()))
                    ready.append(batch)
                continue
            if batch.table.num_rows == 0:
                continue
            self._resuming.discard(uuid)
            mark = self._watermark[uuid]
            first = int(_times(batch.table).min())
            if first > mark + 1:
                gap = await self._streams[uuid].raw_values(mark + 1, first)
                if gap.num_rows:
                    ready.append(LiveBatch(uuid, gap))
                    self._watermark[uuid] = max(mark, int(_times(gap).max()))
            rest = _after(batch.table, self._watermark[uuid])
            if rest.num_rows:
                ready.append(LiveBatch(uuid, rest))
                self._watermark[uuid] = max(self._watermark[uuid], int(_times(rest).max()))
        self._pending = ready


class StreamSubscription:
    """Async iterator of the Arrow tables inserted into one stream (a :class:`Subscription`
    of one stream that yields only the tables)."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    @property
    def subscription(self) -> Subscription:
        """The underlying :class:`Subscription`."""
        return self._subscription

    def stop(self) -> None:
        """End the iteration (see :meth:`Subscription.stop`)."""
        self._subscription.stop()

    async def aclose(self) -> None:
        """Stop and close the call."""
        await self._subscription.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> pa.Table:
        return (await self._subscription.__anext__()).table

    async def __aenter__(self) -> Self:
        await self._subscription.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
