"""A server process that freezes or dies while a call is in flight (issue 14): the client notices a frozen
server within 10 s by keepalive pings, and every failure reads like the library's own error, naming the call
and the endpoint once, with no internals (no ``IndexError: pop from an empty deque``, no ``EndOfStream``)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pingthings.timeseries as pt
from client.test_connect import free_port, start_server_process, stop_server_process
from pingthings.timeseries.exceptions import ConnectionError

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
