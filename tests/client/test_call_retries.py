"""Retries (issue 14): idempotent calls are tried again after transient failures, within the count and the
budget; writes only when their merge policy makes them idempotent."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest

import pingthings.timeseries as pt
from client.scripted_server import Reply, ScriptedServer
from client.test_connect import free_port, start_server_process, stop_server_process
from pingthings._proto import v5api
from pingthings.timeseries import AsyncClient
from pingthings.timeseries._call_policy import backoff
from pingthings.timeseries.exceptions import ConnectionError, DeadlineExceededError

STREAM_INFO = bytes(v5api.StreamInfoResponse(version_major=7))
INSERTED = bytes(v5api.InsertResponse(version_major=8))
POINTS = (np.array([1, 2, 3], dtype=np.int64), np.array([1.0, 2.0, 3.0]))


@pytest.fixture
def flaky() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.mark.anyio
async def test_idempotent_call_succeeds_after_transient_failures(flaky: ScriptedServer) -> None:
    flaky.script("StreamInfo", "unavailable", "unavailable", Reply([STREAM_INFO]))
    client = await AsyncClient.connect(endpoint=flaky.endpoint, retries=3)
    async with client:
        assert await client.stream_handle(uuidlib.uuid4()).get_latest_version() == 7
    assert len(flaky.calls("StreamInfo")) == 3


@pytest.mark.anyio
async def test_retry_count_is_respected(flaky: ScriptedServer) -> None:
    flaky.script("StreamInfo", "unavailable")
    client = await AsyncClient.connect(endpoint=flaky.endpoint, retries=1)
    async with client:
        with pytest.raises(ConnectionError) as info:
            await client.stream_handle(uuidlib.uuid4()).get_latest_version()
    assert len(flaky.calls("StreamInfo")) == 2
    assert "UNAVAILABLE" not in str(info.value) or "scripted: try again" in str(info.value)
    assert str(info.value).count(flaky.endpoint) == 1


@pytest.mark.anyio
async def test_retry_budget_is_respected(flaky: ScriptedServer) -> None:
    flaky.script("StreamInfo", "unavailable")
    client = await AsyncClient.connect(endpoint=flaky.endpoint, retries=50, retry_budget=0)
    async with client:
        with pytest.raises(ConnectionError):
            await client.stream_handle(uuidlib.uuid4()).get_latest_version()
    assert len(flaky.calls("StreamInfo")) == 1


@pytest.mark.anyio
async def test_streaming_read_retries_before_its_first_message(flaky: ScriptedServer) -> None:
    message = bytes(v5api.RawValuesResponse(values=[v5api.RawPoint(time=5, value=1.5)]))
    flaky.script("RawValues", "unavailable", Reply([message]))
    client = await AsyncClient.connect(endpoint=flaky.endpoint)
    async with client:
        table = await client.stream_handle(uuidlib.uuid4()).raw_values(0, 100)
    assert table.num_rows == 1
    assert len(flaky.calls("RawValues")) == 2


def test_insert_that_is_not_idempotent_is_not_retried(flaky: ScriptedServer) -> None:
    flaky.script("Insert", "unavailable", Reply([INSERTED]))
    with pt.connect(endpoint=flaky.endpoint, retries=3) as conn:
        stream = conn.stream_from_uuid(uuidlib.uuid4())
        with pytest.raises(ConnectionError):
            stream.insert(POINTS, merge="never")
        assert len(flaky.calls("Insert")) == 1
        assert stream.insert(POINTS, merge="never") == 8  # the script's next step answers


@pytest.mark.parametrize("merge", ["equal", "retain", "replace"])
def test_insert_with_an_idempotent_merge_policy_is_retried(flaky: ScriptedServer, merge: str) -> None:
    flaky.script("Insert", "unavailable", Reply([INSERTED]))
    with pt.connect(endpoint=flaky.endpoint, retries=3) as conn:
        assert conn.stream_from_uuid(uuidlib.uuid4()).insert(POINTS, merge=merge) == 8
    assert len(flaky.calls("Insert")) == 2


def test_server_restart_is_bridged_by_retries(tmp_path: Path) -> None:
    # Connections are refused while the server restarts; the call succeeds once the port answers again.
    endpoint = f"127.0.0.1:{free_port()}"
    procs = [start_server_process(tmp_path / "data", endpoint)]
    try:
        with pt.connect(endpoint=endpoint, retries=8, retry_budget=10) as conn:
            assert conn.info()["major_version"] == 5
            stop_server_process(procs[0])
            timer = threading.Timer(
                0.3, lambda: procs.append(start_server_process(tmp_path / "data", endpoint))
            )
            timer.start()
            try:
                assert conn.info()["major_version"] == 5
            finally:
                timer.join()
    finally:
        for proc in procs:
            stop_server_process(proc)


def test_backoff_grows_with_jitter() -> None:
    firsts = {round(backoff(1), 6) for _ in range(50)}
    assert len(firsts) > 1  # jitter
    assert all(0.025 <= b <= 0.05 for b in firsts)
    assert all(1.0 <= backoff(20) <= 2.0 for _ in range(20))  # capped


@pytest.mark.anyio
async def test_retry_waits_do_not_outlive_the_deadline(flaky: ScriptedServer) -> None:
    flaky.script("StreamInfo", "unavailable")
    client = await AsyncClient.connect(endpoint=flaky.endpoint, retries=1000, retry_budget=100, timeout=0.5)
    async with client:
        started = anyio.current_time()
        # The last UNAVAILABLE when no retry fits before the deadline any more, or the deadline
        # itself when an attempt is still under way at 0.5 s (a busy machine): either way, on time.
        with pytest.raises((ConnectionError, DeadlineExceededError)):
            await client.stream_handle(uuidlib.uuid4()).get_latest_version()
        assert anyio.current_time() - started < 3
