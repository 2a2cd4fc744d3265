"""In-process publish/subscribe of inserted points, keyed by stream uuid.

Inserts publish without ever waiting: each subscriber owns a bounded buffer, and a subscriber
whose buffer is full is dropped (its Subscribe call then ends with a status saying it fell
behind). Everything here runs on the server's event loop.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pingthings._proto.v5api import Status
from pingthings.wire.status import StatusCode

#: Batches a subscriber may have waiting before it is dropped.
DEFAULT_SUBSCRIBER_BUFFER = 1024


@dataclass(frozen=True)
class PublishedBatch:
    """One inserted batch, as the engine accepted it (sorted times, matching values)."""

    uuid: bytes
    times: np.ndarray
    values: np.ndarray


@dataclass(eq=False)
class Subscriber:
    """One Subscribe call's inbox; ``error`` is set when the hub dropped it."""

    send: MemoryObjectSendStream[PublishedBatch]
    receive: MemoryObjectReceiveStream[PublishedBatch]
    uuids: set[bytes] = field(default_factory=set)
    error: Status | None = None


class SubscriptionHub:
    """Routes published batches to the subscribers of their stream."""

    def __init__(self, buffer: int = DEFAULT_SUBSCRIBER_BUFFER) -> None:
        self._buffer = buffer
        self._by_uuid: dict[bytes, set[Subscriber]] = defaultdict(set)
        self._subscribers: set[Subscriber] = set()
        self._closed = False

    def open(self) -> Subscriber:
        """Create a subscriber with an empty inbox and no streams."""
        send, receive = anyio.create_memory_object_stream[PublishedBatch](self._buffer)
        subscriber = Subscriber(send, receive)
        if self._closed:
            send.close()
        else:
            self._subscribers.add(subscriber)
        return subscriber

    def add(self, subscriber: Subscriber, uuids: list[bytes]) -> None:
        """Start delivering the given streams' inserts to ``subscriber``."""
        if subscriber not in self._subscribers:
            return
        for uuid in uuids:
            subscriber.uuids.add(uuid)
            self._by_uuid[uuid].add(subscriber)

    def remove(self, subscriber: Subscriber, uuids: list[bytes]) -> None:
        """Stop delivering the given streams' inserts to ``subscriber``."""
        for uuid in uuids:
            subscriber.uuids.discard(uuid)
            members = self._by_uuid.get(uuid)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del self._by_uuid[uuid]

    def close_subscriber(self, subscriber: Subscriber, error: Status | None = None) -> None:
        """Forget ``subscriber`` and end its inbox (with ``error`` if given)."""
        self.remove(subscriber, list(subscriber.uuids))
        self._subscribers.discard(subscriber)
        if error is not None and subscriber.error is None:
            subscriber.error = error
        subscriber.send.close()

    def publish(self, uuid: bytes, times: np.ndarray, values: np.ndarray) -> None:
        """Hand a batch to every subscriber of ``uuid``; never blocks."""
        members = self._by_uuid.get(uuid)
        if not members or len(times) == 0:
            return
        batch = PublishedBatch(uuid, times, values)
        for subscriber in list(members):
            try:
                subscriber.send.send_nowait(batch)
            except anyio.WouldBlock:
                self.close_subscriber(
                    subscriber,
                    Status(
                        code=int(StatusCode.RESOURCE_DEPLETED),
                        msg=f"subscriber fell behind: more than {self._buffer} batches waiting",
                    ),
                )
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.close_subscriber(subscriber)

    def subscriber_count(self, uuid: bytes) -> int:
        """How many subscribers currently receive ``uuid``'s inserts."""
        return len(self._by_uuid.get(uuid, ()))

    def close(self) -> None:
        """End every subscription (server shutdown); later subscribers start closed."""
        self._closed = True
        for subscriber in list(self._subscribers):
            self.close_subscriber(subscriber)
