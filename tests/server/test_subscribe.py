"""Subscribe: inserted points are pushed to subscribers; slow subscribers are dropped."""

from __future__ import annotations

import queue
import threading
import time
import uuid as uuidlib

import numpy as np
import pyarrow as pa
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.service.subscriptions import SubscriptionHub
from pingthings.wire.status import StatusCode
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient


def wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        threading.Event().wait(0.005)


def collect(responses, out: queue.Queue) -> None:  # type: ignore[no-untyped-def]
    try:
        for payload in responses:
            out.put(v5api.SubscriptionResp.parse(payload))
    except Exception as exc:  # the call is cancelled at the end of the test
        out.put(exc)


def test_subscriber_receives_inserted_batches(server: Server, unique_collection: str) -> None:
    with RawClient(server.endpoint) as client:
        uu = create(client, unique_collection)
        update = v5api.SubscriptionUpdate(op=v5api.SubscriptionUpdateOp.ADD_UUIDS, uuid=[uu])
        responses = client.bidi("Subscribe", [bytes(update)])
        received: queue.Queue = queue.Queue()
        reader = threading.Thread(target=collect, args=(responses, received), daemon=True)
        reader.start()
        wait_until(lambda: server.runtime.hub.subscriber_count(uu) == 1)
        batches = [(np.array([30, 10, 20]), np.array([3.0, 1.0, 2.0])), (np.array([40]), np.array([4.0]))]
        for times, values in batches:
            insert(client, uu, times, values)
        for times, values in batches:
            message = received.get(timeout=10)
            assert isinstance(message, v5api.SubscriptionResp) and message.stat is None
            assert message.uuid == uu
            table = pa.ipc.open_stream(message.arrow_bytes).read_all()
            np.testing.assert_array_equal(table.column("time").cast(pa.int64()).to_numpy(), times)
            np.testing.assert_array_equal(table.column("value").to_numpy(), values)
        responses.cancel()
        reader.join(10)
        wait_until(lambda: server.runtime.hub.subscriber_count(uu) == 0)


def test_subscribe_to_unknown_stream_ends_with_404(server: Server) -> None:
    with RawClient(server.endpoint) as client:
        update = v5api.SubscriptionUpdate(uuid=[uuidlib.uuid4().bytes])
        replies = [v5api.SubscriptionResp.parse(p) for p in client.bidi("Subscribe", [bytes(update)])]
        assert len(replies) == 1 and replies[0].stat.code == StatusCode.NO_SUCH_STREAM
        assert client.info().major_version == 5


@pytest.mark.anyio
async def test_slow_subscriber_is_dropped_without_blocking_publishers() -> None:
    hub = SubscriptionHub(buffer=2)
    slow = hub.open()
    fast = hub.open()
    uu = b"u" * 16
    hub.add(slow, [uu])
    hub.add(fast, [uu])
    for i in range(3):
        hub.publish(uu, np.array([i]), np.array([float(i)]))
        if i < 2:
            assert [b.times[0] async for b in _drain(fast, 1)] == [i]
    assert slow.error is not None and slow.error.code == StatusCode.RESOURCE_DEPLETED
    assert [int(b.times[0]) async for b in slow.receive] == [0, 1]  # what fit, then the end
    assert hub.subscriber_count(uu) == 1
    hub.close()
    assert [int(b.times[0]) async for b in fast.receive] == [2]


async def _drain(subscriber, n: int):  # type: ignore[no-untyped-def]
    for _ in range(n):
        yield await subscriber.receive.receive()


def test_pushes_follow_commit_order_under_concurrent_inserts(server: Server, unique_collection: str) -> None:
    with RawClient(server.endpoint) as client:
        uu = create(client, unique_collection)
        update = v5api.SubscriptionUpdate(op=v5api.SubscriptionUpdateOp.ADD_UUIDS, uuid=[uu])
        responses = client.bidi("Subscribe", [bytes(update)])
        received: queue.Queue = queue.Queue()
        reader = threading.Thread(target=collect, args=(responses, received), daemon=True)
        reader.start()
        wait_until(lambda: server.runtime.hub.subscriber_count(uu) == 1)
        version_of: dict[int, int] = {}
        lock = threading.Lock()

        def writer(k: int) -> None:
            with RawClient(server.endpoint) as own:
                for i in range(15):
                    first = (k * 1000 + i) * 10
                    version = insert(own, uu, np.arange(first, first + 5), np.full(5, float(k)))
                    with lock:
                        version_of[first] = version

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pushed = []
        for _ in range(len(version_of)):
            message = received.get(timeout=10)
            assert isinstance(message, v5api.SubscriptionResp) and message.stat is None
            table = pa.ipc.open_stream(message.arrow_bytes).read_all()
            pushed.append(version_of[int(table.column("time").cast(pa.int64())[0].as_py())])
        responses.cancel()
        reader.join(10)
        assert pushed == sorted(version_of.values())
