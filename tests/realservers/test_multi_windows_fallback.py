"""A StreamSet's aligned windows against a stock BTrDB server: no platform service, so stream by stream.

The double answers gRPC UNIMPLEMENTED for MultiAlignedWindows; the client must then use the
per-stream AlignedWindows calls, give the same tables, and not ask again on that client.
"""

from __future__ import annotations

import uuid as uuidlib

import numpy as np
import pytest

from pingthings.timeseries import AsyncClient, _multi_windows
from pingthings.timeseries.async_streamset import AsyncStreamSet
from tests.realservers.btrdb_double import RunningDouble

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000_000_000
STEP = 1_000_000


async def test_a_stock_server_is_asked_stream_by_stream(v4_server: RunningDouble) -> None:
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        streams = []
        for i in range(3):
            stream = await client.create(uuidlib.uuid4(), "grid/fallback", {"name": f"s{i}"})
            times = T0 + np.arange(2_000 + i, dtype=np.int64) * STEP
            await stream.insert((times, np.arange(times.size, dtype=np.float64)))
            streams.append(stream)
        assert _multi_windows.offered(client)
        got = await AsyncStreamSet(streams).aligned_windows(T0, T0 + 10**10, 28)
        assert not _multi_windows.offered(client)  # learnt from the UNIMPLEMENTED answer
        want = [await s.aligned_windows(T0, T0 + 10**10, 28) for s in streams]
        assert [t.num_rows for t in got] == [t.num_rows for t in want] and got[0].num_rows > 0
        assert all(g.equals(w) for g, w in zip(got, want, strict=True))
        again = await AsyncStreamSet(streams).aligned_windows(T0, T0 + 10**10, 28)
        assert all(g.equals(w) for g, w in zip(again, want, strict=True))
