"""Buffered inserts through the server: one client writes, another reads every acknowledged point."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire import points
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient

T0 = 1_700_000_000 * 10**9


@pytest.fixture
def writer(server: Server) -> Iterator[RawClient]:
    with RawClient(server.endpoint) as c:
        yield c


@pytest.fixture
def reader(server: Server) -> Iterator[RawClient]:
    with RawClient(server.endpoint) as c:
        yield c


def second(i: int) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
    return t, np.round(np.cos(t / 1e9), 3)


def read_all(client: RawClient, uu: bytes, version: int = 0) -> tuple[int, np.ndarray]:
    replies = [
        points.decode_raw_values(p)
        for p in client.stream(
            "RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=T0 * 2, version_major=version)
        )
    ]
    return replies[0].version_major, np.concatenate([r.times for r in replies])


def stream_version(client: RawClient, uu: bytes) -> int:
    reply = v5api.StreamInfoResponse.parse(
        client.unary("StreamInfo", v5api.StreamInfoParams(uuid=uu, omit_version=False, omit_descriptor=True))
    )
    assert reply.stat is None, reply.stat
    return reply.version_major


def test_another_client_reads_every_acknowledged_point(
    writer: RawClient, reader: RawClient, unique_collection: str
) -> None:
    uu = create(writer, unique_collection)
    versions = [insert(writer, uu, *second(i)) for i in range(10)]
    assert len(set(versions)) == 1  # buffered: one pending version
    version, times = read_all(reader, uu)
    assert version == versions[0]
    np.testing.assert_array_equal(times, np.concatenate([second(i)[0] for i in range(10)]))
    # The version read is a snapshot now: later inserts go to the next one.
    after = insert(writer, uu, *second(10))
    assert after == version + 1
    assert read_all(reader, uu, version)[1].size == 1200
    assert stream_version(reader, uu) == after  # StreamInfo merges, so `after` is final too
    assert insert(writer, uu, *second(11)) == after + 1
    assert read_all(reader, uu, after)[1].size == 1320
