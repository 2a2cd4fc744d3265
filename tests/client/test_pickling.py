"""Clients pickle to their connection settings and reconnect where they are unpickled."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import uuid

import numpy as np
import pytest

from pingthings.timeseries import AsyncClient, Client
from tests.client.pool_work import count_in_worker

pytestmark = pytest.mark.timeout(180)


@pytest.mark.anyio
async def test_async_client_round_trip_reconnects(aclient: AsyncClient, unique_collection: str) -> None:
    stream = await aclient.create(uuid.uuid4(), unique_collection, {"name": "p"})
    await stream.insert((np.arange(5, dtype=np.int64), np.ones(5)))
    copy = pickle.loads(pickle.dumps(aclient))
    try:
        assert copy is not aclient and copy.settings == aclient.settings
        assert copy.arrow_enabled == aclient.arrow_enabled
        assert await (await copy.stream_from_uuid(stream.uuid)).count() == 5
    finally:
        await copy.aclose()
    assert await stream.count() == 5  # the original is untouched


def test_api_key_travels_but_is_never_shown(auth_server, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    with Client.connect(endpoint=auth_server.endpoint, apikey=auth_server.api_key) as conn:
        data = pickle.dumps(conn)
        restored = pickle.loads(data)
        try:
            assert restored.info()["major_version"] == 5  # the key came along: the server accepts it
            shown = [repr(conn), repr(restored), repr(conn.get_async_client().settings), str(restored)]
            assert not any(auth_server.api_key in text for text in shown)
        finally:
            restored.close()
    assert not any(auth_server.api_key in record.getMessage() for record in caplog.records)


def test_a_multiprocessing_pool_uses_pickled_clients(conn: Client, unique_collection: str) -> None:
    streams = [conn.create(uuid.uuid4(), unique_collection, {"name": f"w{i}"}) for i in range(4)]
    for i, stream in enumerate(streams):
        stream.insert((np.arange(10 * (i + 1), dtype=np.int64), np.zeros(10 * (i + 1))))
    jobs = [(conn, s.uuid) for s in streams]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(count_in_worker, jobs)
    assert [count for _, count in results] == [10, 20, 30, 40]
    assert all(pid != os.getpid() for pid, _ in results)
    assert conn.info()["major_version"] == 5  # the parent's client still works
