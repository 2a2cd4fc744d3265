"""Deadlines on both faces and both backends against a server that stalls (issue 14), and the limiter's
queue bound (issue 16): every call ends within its timeout, queueing included, with an error that names the
call and the limit, and the server sees grpc-timeout and the cancellation."""

from __future__ import annotations

import math
import threading
import uuid as uuidlib
from collections.abc import Iterator

import anyio
import pytest

import pingthings.timeseries as pt
from client.scripted_server import Reply, ScriptedServer
from pingthings._proto import v5api
from pingthings.timeseries import AsyncClient
from pingthings.timeseries._call_policy import current_timeout
from pingthings.timeseries.exceptions import DeadlineExceededError, OverloadedError, PingThingsError

STREAM_INFO = bytes(v5api.StreamInfoResponse(version_major=7))


def raw_message(time: int) -> bytes:
    return bytes(v5api.RawValuesResponse(values=[v5api.RawPoint(time=time, value=float(time))]))


@pytest.fixture
def stalled() -> Iterator[ScriptedServer]:
    """A server that answers Info and leaves every other call hanging."""
    with ScriptedServer() as server:
        yield server


def wait_cancelled(event: threading.Event) -> bool:
    return event.wait(10)


@pytest.mark.anyio
async def test_unary_call_ends_at_its_timeout(stalled: ScriptedServer) -> None:
    client = await AsyncClient.connect(endpoint=stalled.endpoint, timeout=0.5)
    async with client:
        started = anyio.current_time()
        with pytest.raises(DeadlineExceededError) as info:
            await client.stream_handle(uuidlib.uuid4()).get_latest_version()
        elapsed = anyio.current_time() - started
    assert 0.4 < elapsed < 5
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, PingThingsError)
    text = str(info.value)
    assert "/v5api.BTrDB/StreamInfo" in text and "0.5 s" in text
    assert text.count(stalled.endpoint) == 1
    (attempt,) = stalled.calls("StreamInfo")  # a timeout is not retried
    assert attempt.time_remaining is not None and attempt.time_remaining <= 0.5  # grpc-timeout arrived
    assert await anyio.to_thread.run_sync(wait_cancelled, attempt.cancelled)  # and so did RST_STREAM


@pytest.mark.anyio
async def test_timeout_scope_overrides_the_default_and_nests(stalled: ScriptedServer) -> None:
    client = await AsyncClient.connect(endpoint=stalled.endpoint, timeout=30)
    async with client:
        stream = client.stream_handle(uuidlib.uuid4())
        with client.timeout(20):
            with client.timeout(0.3):
                assert current_timeout(client, 30) == 0.3
                with pytest.raises(DeadlineExceededError, match=r"0\.3 s"):
                    await stream.get_latest_version()
            assert current_timeout(client, 30) == 20
        assert current_timeout(client, 30) == 30
        with client.timeout(None):
            assert current_timeout(client, 30) == math.inf
    (attempt,) = stalled.calls("StreamInfo")
    assert attempt.time_remaining is not None and attempt.time_remaining <= 0.3


@pytest.mark.anyio
async def test_timeout_scope_reaches_the_tasks_of_a_fan_out(stalled: ScriptedServer) -> None:
    client = await AsyncClient.connect(endpoint=stalled.endpoint, timeout=30)
    async with client:
        streams = pt.AsyncStreamSet([client.stream_handle(uuidlib.uuid4()) for _ in range(3)])
        with client.timeout(0.3), pytest.raises(DeadlineExceededError, match=r"0\.3 s"):
            await streams.get_latest_version()
    attempts = stalled.calls("StreamInfo")
    assert attempts and all(a.time_remaining is not None and a.time_remaining <= 0.3 for a in attempts)


def test_sync_timeout_scope_travels_with_the_call(stalled: ScriptedServer) -> None:
    with pt.connect(endpoint=stalled.endpoint, timeout=30) as conn:
        stream = conn.stream_from_uuid(uuidlib.uuid4())
        with conn.timeout(0.3), pytest.raises(DeadlineExceededError) as info:
            stream.get_latest_version()
        assert "0.3 s" in str(info.value) and "StreamInfo" in str(info.value)
        stalled.script("RawValues", Reply([raw_message(1)], hang=True))
        with conn.timeout(0.3), pytest.raises(DeadlineExceededError, match=r"no message for 0\.3 s"):
            for _ in stream.raw_values_iter(0, 100):
                pass
    (attempt,) = stalled.calls("StreamInfo")
    assert attempt.time_remaining is not None and attempt.time_remaining <= 0.3


def test_sync_connect_level_timeout(stalled: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINGTHINGS_TIMEOUT", "0.4")
    with pt.connect(endpoint=stalled.endpoint) as conn:
        assert conn.get_async_client().call_settings.timeout == 0.4
        with pytest.raises(DeadlineExceededError, match=r"StreamInfo .* 0\.4 s"):
            conn.stream_from_uuid(uuidlib.uuid4()).get_latest_version()


@pytest.mark.anyio
async def test_streaming_read_is_bounded_between_messages_not_in_total(stalled: ScriptedServer) -> None:
    # Ten messages 0.15 s apart take ~1.4 s in total, well past the 0.6 s timeout: the read still succeeds.
    stalled.script("RawValues", Reply([raw_message(t) for t in range(10)], gap=0.15))
    client = await AsyncClient.connect(endpoint=stalled.endpoint, timeout=0.6)
    async with client:
        stream = client.stream_handle(uuidlib.uuid4())
        started = anyio.current_time()
        table = await stream.raw_values(0, 100)
        assert anyio.current_time() - started > 0.6
        assert table.num_rows == 10
        # A stream that goes silent after its first message fails one timeout after that message.
        stalled.script("RawValues", Reply([raw_message(1)], hang=True))
        with pytest.raises(DeadlineExceededError) as info:
            await stream.raw_values(0, 100)
    assert "/v5api.BTrDB/RawValues" in str(info.value) and "no message for 0.6 s" in str(info.value)
    first, second = stalled.calls("RawValues")
    assert first.time_remaining is None  # no grpc-timeout: the whole read is not bounded
    assert await anyio.to_thread.run_sync(wait_cancelled, second.cancelled)


@pytest.mark.anyio
async def test_time_queued_for_the_limiter_counts_against_the_timeout(stalled: ScriptedServer) -> None:
    client = await AsyncClient.connect(endpoint=stalled.endpoint, concurrency_limit=1, timeout=30)
    async with client, anyio.create_task_group() as tg:
        stream = client.stream_handle(uuidlib.uuid4())
        tg.start_soon(stream.get_latest_version)  # takes the only slot and hangs
        with anyio.fail_after(10):
            while client.limiter.borrowed_tokens == 0:
                await anyio.sleep(0.01)
        started = anyio.current_time()
        with client.timeout(0.3), pytest.raises(DeadlineExceededError) as info:
            await stream.get_latest_version()
        elapsed = anyio.current_time() - started
        tg.cancel_scope.cancel()
    assert 0.25 < elapsed < 5
    assert "did not start within its 0.3 s timeout" in str(info.value)
    assert "concurrency_limit" in str(info.value)
    assert len(stalled.calls("StreamInfo")) == 1  # the queued call never reached the server


@pytest.mark.anyio
async def test_calls_beyond_max_waiting_fail_at_once(stalled: ScriptedServer) -> None:
    client = await AsyncClient.connect(endpoint=stalled.endpoint, concurrency_limit=1, max_waiting=2)
    async with client, anyio.create_task_group() as tg:
        stream = client.stream_handle(uuidlib.uuid4())
        for _ in range(3):  # one holds the slot, two wait
            tg.start_soon(stream.get_latest_version)
        with anyio.fail_after(10):
            while client.limiter.statistics().tasks_waiting < 2:
                await anyio.sleep(0.01)
        started = anyio.current_time()
        with pytest.raises(OverloadedError) as info:
            await stream.get_latest_version()
        assert anyio.current_time() - started < 1
        tg.cancel_scope.cancel()
    assert isinstance(info.value, PingThingsError)
    assert "max_waiting" in str(info.value) and "2 calls already wait" in str(info.value)


def test_bad_timeouts_are_refused(stalled: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="timeout"):
        pt.connect(endpoint=stalled.endpoint, timeout=-1)
    monkeypatch.setenv("PINGTHINGS_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="PINGTHINGS_TIMEOUT"):
        pt.connect(endpoint=stalled.endpoint)
    monkeypatch.delenv("PINGTHINGS_TIMEOUT")
    with pt.connect(endpoint=stalled.endpoint) as conn, pytest.raises(ValueError, match="positive"):
        conn.timeout(0)


@pytest.mark.anyio
async def test_a_fan_out_waits_its_turn_instead_of_overloading(
    server_endpoint: str, unique_collection: str
) -> None:
    # Ten streams through two slots and a queue of zero: the fan-out itself keeps within the limit.
    client = await AsyncClient.connect(endpoint=server_endpoint, concurrency_limit=2, max_waiting=0)
    async with client:
        streams = [
            await client.create(uuidlib.uuid4(), unique_collection, {"name": f"s{i}"}) for i in range(10)
        ]
        versions = await pt.AsyncStreamSet(streams).get_latest_version()
        assert len(versions) == 10
        fetched = await client.streamset_from_uuids([s.uuid for s in streams])
        assert len(fetched) == 10
