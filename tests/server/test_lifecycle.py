"""Starting and stopping the server: thread and event-loop modes, restart, graceful stop, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio.to_thread
import numpy as np
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.config import ConfigError
from pingthings.wire import points
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient


def info_major(endpoint: str) -> int:
    with RawClient(endpoint) as client:
        return client.info().major_version


def test_thread_mode_picks_a_free_port_and_stops(tmp_path: Path) -> None:
    with Server(tmp_path) as srv:
        host, port = srv.endpoint.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        assert info_major(srv.endpoint) == 5
    assert not srv.running
    with pytest.raises(RuntimeError):
        _ = srv.endpoint


@pytest.mark.anyio
async def test_async_context_manager_serves_from_any_backend(tmp_path: Path) -> None:
    async with Server(tmp_path) as srv:
        assert await anyio.to_thread.run_sync(info_major, srv.endpoint) == 5
    assert not srv.running


def test_data_survives_a_restart(tmp_path: Path) -> None:
    times, values = np.arange(0, 5000, 7, dtype=np.int64), np.linspace(0, 1, len(range(0, 5000, 7)))
    with Server(tmp_path) as srv, RawClient(srv.endpoint) as client:
        uu = create(client, "persist", {"name": "p"}, {"a": "b"})
        version = insert(client, uu, times, values)
    with Server(tmp_path) as srv, RawClient(srv.endpoint) as client:
        info = v5api.StreamInfoResponse.parse(client.unary("StreamInfo", v5api.StreamInfoParams(uuid=uu)))
        assert info.version_major == version and info.descriptor.collection == "persist"
        got = points.decode_raw_values(
            client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=10**6))[0]
        )
        np.testing.assert_array_equal(got.times, times)
        np.testing.assert_array_equal(got.values, values)


def test_refuses_public_address_without_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without API keys"):
        Server(tmp_path, listen="0.0.0.0:0")


def test_bad_tls_files_fail_at_start(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    with (
        pytest.raises(ConfigError, match="TLS"),
        Server(tmp_path / "data", tls=(tmp_path / "c.pem", tmp_path / "k.pem")),
    ):
        pass


def test_stop_lets_in_flight_calls_finish(tmp_path: Path) -> None:
    n = 300_000
    times = np.arange(n, dtype=np.int64) * 1000
    srv = Server(tmp_path)
    srv.start()
    try:
        with RawClient(srv.endpoint) as client:
            uu = create(client, "drain")
            insert(client, uu, times, np.ones(n))
            replies = client.channel.unary_stream("/v5api.BTrDB/RawValues")(
                bytes(v5api.RawValuesParams(uuid=uu, start=0, end=n * 1000)), timeout=60
            )
            first = points.decode_raw_values(next(replies))
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            rest = [points.decode_raw_values(p) for p in replies]
            stopper.join(60)
            assert not stopper.is_alive()
        received = np.concatenate([first.times] + [r.times for r in rest])
        np.testing.assert_array_equal(received, times)
    finally:
        srv.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_python_m_server_stops_gracefully_on_signal(tmp_path: Path, signum: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pingthings.server", "--data", str(tmp_path), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "listening on" in line, line + process.stderr.read()  # type: ignore[union-attr]
        endpoint = line.strip().rsplit(" ", 1)[-1]
        with RawClient(endpoint) as client:
            uu = create(client, "cli")
            version = insert(client, uu, np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0]))
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    from pingthings.server.engine import Engine

    engine = Engine(tmp_path / "engine.sqlite")
    try:
        got_version, got_times, _ = engine.raw_values(uu, 0, 10)
        assert got_version == version and got_times.tolist() == [1, 2, 3]
    finally:
        engine.close()


def test_cli_refuses_public_address_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pingthings.server", "--data", str(tmp_path), "--listen", "0.0.0.0:4410"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "without API keys" in result.stderr


def test_info_reports_the_advertised_endpoint(tmp_path: Path) -> None:
    with Server(tmp_path, advertise="db.example.com:4410") as srv, RawClient(srv.endpoint) as client:
        assert list(client.info().proxy.proxy_endpoints) == ["db.example.com:4410"]
    with pytest.raises(ConfigError):
        Server(tmp_path, advertise="no-port")


def test_cli_reports_an_address_in_use(tmp_path: Path) -> None:
    with Server(tmp_path / "first") as srv:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pingthings.server",
                "--data",
                str(tmp_path / "second"),
                "--listen",
                srv.endpoint,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and "cannot start the server" in result.stderr
    assert "Traceback" not in result.stderr
