"""Raw reads against a stock BTrDB server: no platform service, so (Arrow)RawValues.

The double answers gRPC UNIMPLEMENTED for RawBlocks; the client must then read through the
standard RPCs, give the same tables, and not ask again on that client.
"""

from __future__ import annotations

import uuid as uuidlib

import numpy as np
import pytest

from pingthings.timeseries import AsyncClient, _raw_blocks
from tests.realservers.btrdb_double import RunningDouble

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000_000_000
STEP = 1_000_000


async def test_a_stock_server_is_read_through_raw_values(v4_server: RunningDouble) -> None:
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "grid/fallback", {"name": "s"})
        times = T0 + np.arange(3_000, dtype=np.int64) * STEP
        await stream.insert((times, np.arange(times.size, dtype=np.float64) / 8))
        assert _raw_blocks.offered(client)
        got = await stream.raw_values(T0 + 5, T0 + 2_000 * STEP + 1)
        assert not _raw_blocks.offered(client)  # learnt from the UNIMPLEMENTED answer
        assert got.num_rows == 2_000
        np.testing.assert_array_equal(got.column("value").to_numpy(), np.arange(1, 2_001) / 8)
        chunks = [t async for t in stream.raw_values_iter(T0, T0 + 3_000 * STEP)]
        assert sum(t.num_rows for t in chunks) == 3_000
