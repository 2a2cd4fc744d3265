"""A server process that freezes or dies while a call is in flight (issue 14): the client notices a frozen
server within 10 s by keepalive pings, and every failure reads like the library's own error, naming the call
and the endpoint once, with no internals (no ``IndexError: pop from an empty deque``, no ``EndOfStream``)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import numpy as np
import pytest

import pingthings.timeseries as pt
from client.test_connect import free_port, start_server_process, stop_server_process
from pingthings.timeseries.exceptions import ConnectionError, DeadlineExceededError

INTERNALS = ("IndexError", "deque", "EndOfStream", "Traceback", "BrokenResourceError", "anyio")


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    endpoint = f"127.0.0.1:{free_port()}"
    proc = start_server_process(tmp_path / "data", endpoint)
    try:
        yield proc, endpoint
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            stop_server_process(proc)


def assert_reads_well(error: BaseException, endpoint: str) -> None:
    text = str(error)
    assert text.count(endpoint) == 1, text
    for internal in INTERNALS:
        assert internal not in text, text


def test_frozen_server_is_noticed_within_10_seconds(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    proc, endpoint = server_process
    with pt.connect(endpoint=endpoint, timeout=60) as conn:
        assert conn.info()["major_version"] == 5
        os.kill(proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(ConnectionError) as info:
            conn.info()
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert "stopped answering" in str(info.value) and "/v5api.BTrDB/Info" in str(info.value)
    assert_reads_well(info.value, endpoint)


def frozen_call_times_out(
    proc: subprocess.Popen[str], call: Callable[[], object]
) -> tuple[float, DeadlineExceededError]:
    """Freeze the server, make ``call`` (it must time out), thaw the server; the seconds and the error."""
    os.kill(proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceededError) as info:
            call()
        return time.monotonic() - started, info.value
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def test_a_call_to_a_frozen_server_ends_at_its_own_deadline(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    # The server cannot enforce the grpc-timeout it was sent: the client alone ends the call, on a warm
    # connection (where a unary call checks its deadline in its waits instead of under a cancel scope).
    proc, endpoint = server_process
    with pt.connect(endpoint=endpoint, timeout=0.5, retries=0) as conn:
        assert conn.info()["major_version"] == 5
        elapsed, error = frozen_call_times_out(proc, conn.info)
        assert conn.info()["major_version"] == 5  # the connection outlives the call
    assert 0.5 <= elapsed < 2.5, elapsed
    assert "0.5 s" in str(error) and "/v5api.BTrDB/Info" in str(error)
    assert_reads_well(error, endpoint)


def test_a_streaming_read_from_a_frozen_server_ends_at_its_deadline(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    proc, endpoint = server_process
    with pt.connect(endpoint=endpoint, retries=0) as conn:
        stream = conn.create(uuid.uuid4(), "frozen/stream", {"name": "s"})
        stream.insert((np.arange(1, 1001, dtype=np.int64), np.ones(1000)))
        assert stream.raw_values(0, 2000).num_rows == 1000  # warm: connected, the stream's reads known
        with conn.timeout(0.5):
            elapsed, error = frozen_call_times_out(proc, lambda: stream.raw_values(0, 2000))
        assert stream.raw_values(0, 2000).num_rows == 1000
    assert 0.5 <= elapsed < 2.5, elapsed
    assert "0.5 s" in str(error)
    assert_reads_well(error, endpoint)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_concurrent_calls_to_a_frozen_server_each_end_at_their_deadline(
    server_process: tuple[subprocess.Popen[str], str], backend: str
) -> None:
    # One call reads the socket, the others wait to be woken: each ends at its own deadline all the same.
    proc, endpoint = server_process
    ended: dict[float, float] = {}

    async def scenario() -> None:
        async with await pt.AsyncClient.connect(endpoint=endpoint, retries=0) as client:
            assert (await client.info())["major_version"] == 5
            os.kill(proc.pid, signal.SIGSTOP)
            started = anyio.current_time()

            async def call(limit: float) -> None:
                with client.timeout(limit), pytest.raises(DeadlineExceededError):
                    await client.info()
                ended[limit] = anyio.current_time() - started

            connection = client.channel._conn
            assert connection is not None
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, 2.4)
                while not connection._reading:  # the latest deadline reads: the others wait on it
                    await anyio.lowlevel.checkpoint()
                for limit in (0.4, 0.8):
                    tg.start_soon(call, limit)
            os.kill(proc.pid, signal.SIGCONT)
            assert (await client.info())["major_version"] == 5

    anyio.run(scenario, backend=backend)
    for limit, elapsed in ended.items():
        assert limit <= elapsed < limit + 0.8, ended


def test_idle_connection_sends_no_pings(server_process: tuple[subprocess.Popen[str], str]) -> None:
    # A frozen server is no concern while nothing is in flight: the idle client stays quiet and healthy.
    proc, endpoint = server_process
    with pt.connect(endpoint=endpoint) as conn:
        assert conn.info()["major_version"] == 5
        connection = conn.get_async_client().channel._conn
        assert connection is not None
        pings_before = connection._last_ping
        os.kill(proc.pid, signal.SIGSTOP)
        waited = threading.Event()
        waited.wait(9)  # longer than two keepalive intervals, with no call in flight
        os.kill(proc.pid, signal.SIGCONT)
        assert connection._last_ping == pings_before and connection.failure is None
        assert conn.info()["major_version"] == 5


def test_server_killed_during_a_call(server_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, endpoint = server_process
    with pt.connect(endpoint=endpoint, retries=0) as conn:
        assert conn.info()["major_version"] == 5
        os.kill(proc.pid, signal.SIGSTOP)  # the next call waits on a server that cannot answer ...
        killer = threading.Timer(1.0, proc.kill)  # ... until the process dies under it
        killer.start()
        try:
            with pytest.raises(ConnectionError) as info:
                conn.info()
        finally:
            killer.join()
            proc.wait(10)
    assert "/v5api.BTrDB/Info" in str(info.value)
    assert_reads_well(info.value, endpoint)


def test_connection_refused_reads_well() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError) as info:
        pt.connect(endpoint=endpoint)
    assert "could not connect" in str(info.value)
    assert_reads_well(info.value, endpoint)
