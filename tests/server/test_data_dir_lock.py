"""One server per data directory: a second server on the same directory stops at once, naming the
directory and the pid of the server that holds it; the lock goes with the holder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pingthings.server import Server
from pingthings.server.data_lock import DataDirLocked
from tests.server.rawclient import RawClient


def _serve(data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pingthings.cli.main",
            "serve",
            "--data",
            str(data),
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_second_cli_server_on_one_directory_exits_naming_the_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _serve(data)
    try:
        line = first.stdout.readline()  # type: ignore[union-attr]
        assert "listening on" in line, line
        second = _serve(data)
        _, err = second.communicate(timeout=60)
        assert second.returncode not in (0, None)
        assert str(data) in err and str(first.pid) in err, err
        assert "Traceback" not in err
        with RawClient(line.strip().rsplit(" ", 1)[-1]) as client:  # the first one still serves
            assert client.info().major_version == 5
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_in_process_servers_share_the_rule_and_the_lock_is_released(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        with pytest.raises(DataDirLocked, match=str(os.getpid())) as caught:
            Server(tmp_path).start()
        assert str(tmp_path) in str(caught.value)
        assert server.running
    with Server(tmp_path) as again:  # the lock went with the first server
        assert again.running


def test_the_lock_dies_with_a_killed_server(tmp_path: Path) -> None:
    first = _serve(tmp_path)
    line = first.stdout.readline()  # type: ignore[union-attr]
    assert "listening on" in line, line
    first.kill()
    first.communicate(timeout=60)
    with Server(tmp_path) as server:
        assert server.running
