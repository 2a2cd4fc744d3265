"""Cancelling a streaming call mid-stream leaves nothing behind, on both backends and from sync code."""

from __future__ import annotations

import uuid as uuidlib

import anyio
import numpy as np
import pytest

from pingthings._proto import v5api
from pingthings.timeseries import AsyncClient, Client
from pingthings.timeseries._rpc import call_stream, call_unary
from pingthings.wire.points import decode_raw_values, encode_insert

POINTS = 60_000


async def stream_with_points(client: AsyncClient, collection: str) -> tuple[uuidlib.UUID, np.ndarray]:
    uu = uuidlib.uuid4()
    await client.create(uu, collection, {"name": "big"})
    times = np.arange(POINTS, dtype=np.int64) * 1_000_000 + 1_700_000_000_000_000_000
    values = np.sin(np.arange(POINTS) / 100.0)
    await call_unary(client, "Insert", encode_insert(uu.bytes, times, values), v5api.InsertResponse)
    return uu, times


def raw_request(uu: uuidlib.UUID, times: np.ndarray) -> v5api.RawValuesParams:
    return v5api.RawValuesParams(uuid=uu.bytes, start=int(times[0]), end=int(times[-1]) + 1)


async def read_all(client: AsyncClient, request: v5api.RawValuesParams) -> np.ndarray:
    chunks = []
    async with call_stream(client, "RawValues", request) as messages:
        async for payload in messages:
            chunks.append(decode_raw_values(payload, copy=True).times)
    return np.concatenate(chunks)


def open_streams(client: AsyncClient) -> int:
    """HTTP/2 streams still open on the client's connection (0 when there is no connection)."""
    connection = getattr(client.channel, "_conn", None)
    return len(connection.streams) if connection is not None else 0


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["after-first-message", "while-waiting"])
async def test_cancel_mid_stream(aclient: AsyncClient, unique_collection: str, where: str) -> None:
    uu, times = await stream_with_points(aclient, unique_collection)
    request = raw_request(uu, times)
    received = 0
    with anyio.CancelScope() as scope:
        async with call_stream(aclient, "RawValues", request) as messages:
            async for payload in messages:
                received += len(decode_raw_values(payload).times)
                if where == "after-first-message":
                    scope.cancel()
                    await anyio.sleep(0)  # a checkpoint inside the cancelled scope
                else:
                    scope.deadline = anyio.current_time()  # fires while waiting for the next message
    assert scope.cancelled_caught
    assert 0 < received < POINTS
    assert aclient.limiter.borrowed_tokens == 0
    assert open_streams(aclient) == 0
    # The same connection carries the next calls, and the whole stream reads back intact.
    assert (await aclient.info())["major_version"] == 5
    np.testing.assert_array_equal(await read_all(aclient, request), times)


@pytest.mark.anyio
async def test_timeout_mid_stream_then_reuse(aclient: AsyncClient, unique_collection: str) -> None:
    uu, times = await stream_with_points(aclient, unique_collection)
    request = raw_request(uu, times)
    with anyio.move_on_after(0.05) as scope:
        async with call_stream(aclient, "RawValues", request) as messages:
            async for _ in messages:
                await anyio.sleep_forever()  # stalls; the deadline cancels the call
    assert scope.cancelled_caught
    assert aclient.limiter.borrowed_tokens == 0
    np.testing.assert_array_equal(await read_all(aclient, request), times)


def test_breaking_out_of_a_sync_iteration_closes_the_call(conn: Client, unique_collection: str) -> None:
    aclient = conn.get_async_client()
    loop = conn.get_event_loop()
    uu, times = loop.call(stream_with_points, aclient, unique_collection)
    request = raw_request(uu, times)
    seen = 0
    for payload in loop.iterate(call_stream(aclient, "RawValues", request)):
        seen += len(decode_raw_values(payload).times)
        break
    assert 0 < seen < POINTS
    assert loop.call(lambda: aclient.limiter.borrowed_tokens) == 0
    assert loop.call(open_streams, aclient) == 0
    got = np.concatenate(
        [
            decode_raw_values(p, copy=True).times
            for p in loop.iterate(call_stream(aclient, "RawValues", request))
        ]
    )
    np.testing.assert_array_equal(got, times)
