"""Connecting: by arguments, environment and profile; failures that name what to fix."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

import pingthings.timeseries as pt
from pingthings.timeseries import AsyncClient, Client
from pingthings.timeseries.exceptions import ConnectionError, CredentialsError, PermissionDeniedError

ENV_NAMES = (
    "BTRDB_ENDPOINTS",
    "BTRDB_API_KEY",
    "BTRDB_PROFILE",
    "BTRDB_CA_BUNDLE",
    "PINGTHINGS_CONCURRENCY_LIMIT",
)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def write_credentials(home: Path, profiles: dict[str, dict[str, str]]) -> None:
    path = home / ".predictivegrid" / "credentials.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump({name: {"name": name, "btrdb": entry} for name, entry in profiles.items()})
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connect_by_arguments(clean_env: Path, server_endpoint: str) -> None:
    with pt.connect(endpoint=server_endpoint) as conn:
        assert isinstance(conn, Client)
        assert conn.info()["major_version"] == 5
    with pt.connect(server_endpoint) as conn:  # the quick start's positional form
        assert conn.get_async_client().endpoint == server_endpoint


def test_connect_by_environment(
    clean_env: Path, server_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BTRDB_ENDPOINTS", server_endpoint)
    monkeypatch.setenv("PINGTHINGS_CONCURRENCY_LIMIT", "4")
    with pt.connect() as conn:
        assert conn.get_async_client().endpoint == server_endpoint
        assert conn.concurrency_limit == 4


def test_connect_by_profile(clean_env: Path, server_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    write_credentials(
        clean_env, {"my_server": {"endpoints": server_endpoint}, "default": {"endpoints": "x:1"}}
    )
    monkeypatch.setenv("BTRDB_ENDPOINTS", "127.0.0.1:1")  # an explicit profile outranks the environment
    with pt.connect(profile="my_server") as conn:
        assert conn.get_async_client().endpoint == server_endpoint
        assert conn.info()["major_version"] == 5
    monkeypatch.delenv("BTRDB_ENDPOINTS")
    monkeypatch.setenv("BTRDB_PROFILE", "my_server")
    with Client.connect() as conn:
        assert conn.get_async_client().endpoint == server_endpoint


def test_connect_without_settings_says_what_to_set(clean_env: Path) -> None:
    with pytest.raises(CredentialsError, match="BTRDB_ENDPOINTS"):
        pt.connect()


def test_unreachable_server_names_the_endpoint(clean_env: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError) as info:
        pt.connect(endpoint=endpoint)
    assert endpoint in str(info.value)
    assert isinstance(info.value, OSError)  # also the builtin ConnectionError


@pytest.mark.anyio
async def test_async_connect_and_failure(clean_env: Path, server_endpoint: str, anyio_backend: str) -> None:
    async with await AsyncClient.connect(endpoint=server_endpoint) as client:
        assert (await client.info())["major_version"] == 5
    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=endpoint.replace(".", r"\.")):
        await AsyncClient.connect(endpoint=endpoint)


def test_api_keys(clean_env: Path, auth_server: object, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, key = auth_server.endpoint, auth_server.api_key  # type: ignore[attr-defined]
    with pytest.raises(PermissionDeniedError) as info:
        pt.connect(endpoint=endpoint)
    assert endpoint in str(info.value)
    with pytest.raises(PermissionDeniedError):
        pt.connect(endpoint=endpoint, apikey="wrong-key")
    with pt.connect(endpoint=endpoint, apikey=key) as conn:
        assert conn.info()["major_version"] == 5
    monkeypatch.setenv("BTRDB_ENDPOINTS", endpoint)
    monkeypatch.setenv("BTRDB_API_KEY", key)
    with pt.connect() as conn:
        assert conn.info()["major_version"] == 5


def test_documented_import_path(server_endpoint: str) -> None:
    # a fresh interpreter: ``import pingthings as pt`` alone must give ``pt.timeseries.connect``
    code = (
        "import sys, pingthings as pt\n"
        "with pt.timeseries.connect(endpoint=sys.argv[1]) as conn:\n"
        "    print(conn.info()['major_version'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, server_endpoint], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5"


def start_server_process(data: Path, endpoint: str) -> subprocess.Popen[str]:
    """``python -m pingthings.server`` on ``endpoint``; returns once it says it listens."""
    command = [sys.executable, "-m", "pingthings.server", "--data", str(data), "--listen", endpoint]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the server reports that it listens (or exits)
    assert "listening" in line, f"server did not start: {line!r}"
    return proc


def stop_server_process(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_server_going_away_then_back(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    proc = start_server_process(tmp_path / "data", endpoint)
    try:
        with pt.connect(endpoint=endpoint) as conn:
            assert conn.info()["major_version"] == 5
            stop_server_process(proc)
            with pytest.raises(ConnectionError) as info:
                conn.info()
            assert endpoint in str(info.value)
            proc = start_server_process(tmp_path / "data", endpoint)  # same port, same data
            assert conn.info()["major_version"] == 5  # the same client reconnects
    finally:
        stop_server_process(proc)


def test_peer_that_is_not_a_grpc_server(clean_env: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"

        def hang_up() -> None:
            peer, _ = listener.accept()
            peer.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            peer.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        try:
            with pytest.raises(ConnectionError) as info:
                pt.connect(endpoint=endpoint, connect_timeout=5.0)
        finally:
            thread.join(10)
    assert endpoint in str(info.value)
