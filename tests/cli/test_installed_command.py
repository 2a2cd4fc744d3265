"""The installed ``pingthings`` command, run as a user runs it: in a subprocess, through pipes.

Covers the defaults and edges a shell user meets: the default endpoint and how ``--help`` shows
it, connection options after the subcommand, ``--window`` over a stream's own data, a reader that
closes the pipe early, endpoint validation, and one scenario for every exit code ``--help`` lists.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .support import BASE_NS, Populated

pytestmark = pytest.mark.timeout(180)

#: The installed console script, next to the interpreter running the tests.
PINGTHINGS = shutil.which("pingthings", path=str(Path(sys.executable).parent)) or "pingthings"

#: Environment without any connection settings, so defaults are what is tested.
_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("BTRDB_", "PINGTHINGS_"))}


def run(*args: str, home: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``pingthings ARGS`` and return what it printed and its exit code."""
    environment = {**_CLEAN, **(env or {})}
    if home is not None:
        environment["HOME"] = str(home)
    return subprocess.run([PINGTHINGS, *args], capture_output=True, text=True, timeout=timeout,
                          env=environment, check=False)


@pytest.fixture(scope="module")
def long_stream(server_endpoint: str) -> Iterator[tuple[str, np.ndarray]]:
    """A stream of 200,000 points at 1 kHz (its CSV is megabytes: more than a pipe buffer holds)."""
    import pingthings.timeseries as pt

    times = BASE_NS + np.arange(200_000, dtype=np.int64) * 1_000_000
    with pt.connect(endpoint=server_endpoint) as conn:
        stream = conn.create(uuid.uuid4(), f"cli_tests/long/{uuid.uuid4().hex[:8]}", tags={"name": "long"})
        stream.insert((times, np.sin(np.arange(times.size) / 100.0)))
        yield str(stream.uuid), times


def test_help_shows_the_endpoint_order_and_the_one_in_use(tmp_path: Path) -> None:
    bare = run("--help", home=tmp_path)
    assert bare.returncode == 0
    text = " ".join(bare.stdout.split())
    assert "$BTRDB_ENDPOINTS, else the profile's endpoint, else 127.0.0.1:4410" in text
    assert "now: 127.0.0.1:4410" in text

    from_env = run("--help", home=tmp_path, env={"BTRDB_ENDPOINTS": "db.example.com:4411"})
    assert "now: $BTRDB_ENDPOINTS=db.example.com:4411" in " ".join(from_env.stdout.split())

    (tmp_path / ".predictivegrid").mkdir()
    (tmp_path / ".predictivegrid" / "credentials.yaml").write_text(
        "default:\n  btrdb:\n    endpoints: \"db.example.com:4411\"\n"
    )
    from_profile = run("--help", home=tmp_path)
    assert "now: profile 'default'" in " ".join(from_profile.stdout.split())


def test_with_no_settings_commands_talk_to_127_0_0_1_4410(tmp_path: Path) -> None:
    from pingthings.server import Server

    try:
        server = Server(tmp_path / "data", listen="127.0.0.1:4410")
        server.start()
    except OSError as exc:
        pytest.skip(f"127.0.0.1:4410 is taken on this machine ({exc})")
    try:
        result = run("info", "--json", home=tmp_path)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert '"major_version": 5' in result.stdout


def test_connection_options_after_the_subcommand(populated: Populated, tmp_path: Path) -> None:
    after = run("ls", populated.collection, "--endpoint", populated.endpoint, home=tmp_path)
    assert after.returncode == 0, after.stderr
    assert after.stdout.split() == [populated.collection]
    # given after the subcommand, it wins over the one before it
    closed = f"127.0.0.1:{_closed_port()}"
    both = run("--endpoint", closed, "ls", populated.collection, "--endpoint", populated.endpoint)
    assert both.returncode == 0, both.stderr
    stream = str(populated.streams["V1"].uuid)
    query = run("query", stream, "--pw", "40", "--endpoint", populated.endpoint)
    assert query.returncode == 0, query.stderr


def test_window_without_start_and_end_covers_the_streams_data(populated: Populated) -> None:
    inserted = populated.streams["V1"]
    result = run("--endpoint", populated.endpoint, "query", str(inserted.uuid), "--window", "10s",
                 "--time-ns")
    assert result.returncode == 0, result.stderr
    rows = [line.split(",") for line in result.stdout.strip().splitlines()[1:]]
    starts = [int(row[0]) for row in rows]
    counts = [int(row[4]) for row in rows]
    assert starts[0] == int(inserted.times[0])
    assert starts[-1] <= int(inserted.times[-1]) < starts[-1] + 10 * 10**9
    assert sum(counts) == inserted.times.size


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly(
    server_endpoint: str, long_stream: tuple[str, np.ndarray]
) -> None:
    stream, _ = long_stream
    proc = subprocess.Popen([PINGTHINGS, "--endpoint", server_endpoint, "query", stream],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_CLEAN)
    assert proc.stdout is not None and proc.stderr is not None
    header = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert header.startswith(b'"time","value"')
    assert stderr == ""


@pytest.mark.parametrize(("endpoint", "says"), [
    ("http://127.0.0.1:4410", "has a scheme"),
    ("grpcs://db.example.com:4411", "has a scheme"),
    ("127.0.0.1:4410,", "empty entry"),
    ("127.0.0.1", "host:port"),
])
def test_endpoints_are_checked_before_connecting(endpoint: str, says: str) -> None:
    result = run("--endpoint", endpoint, "info")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and endpoint in lines[0], result.stderr


def test_a_refused_connection_names_the_endpoint_once() -> None:
    endpoint = f"127.0.0.1:{_closed_port()}"
    result = run("--endpoint", endpoint, "info")
    assert result.returncode == 3
    assert result.stderr.count(endpoint) == 1, result.stderr
    assert "Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _documented_exit_codes() -> dict[int, str]:
    text = " ".join(run("--help").stdout.split())
    listed = text[text.index("Exit codes:"):]
    return {int(code): what for code, what in re.findall(r"(\d+) ([^,]+?)(?:,|\.)", listed)}


def test_every_exit_code_in_help_happens_as_documented(
    populated: Populated, tmp_path: Path, long_stream: tuple[str, np.ndarray]
) -> None:
    documented = _documented_exit_codes()
    seen: dict[int, str] = {}

    ok = run("--endpoint", populated.endpoint, "ls")
    seen[ok.returncode] = "success"
    refused = run("--endpoint", populated.endpoint, "sql", "DELETE FROM streams")
    seen[refused.returncode] = "the server refused the operation"
    usage = run("query", "--no-such-option")
    seen[usage.returncode] = "usage error"
    unreachable = run("--endpoint", f"127.0.0.1:{_closed_port()}", "ls")
    seen[unreachable.returncode] = "cannot reach or authenticate with the server"
    missing = run("--endpoint", populated.endpoint, "query", str(uuid.uuid4()))
    seen[missing.returncode] = "no such stream"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = run("serve", "--data", str(tmp_path / "d"), "--listen", f"127.0.0.1:{busy.getsockname()[1]}")
    seen[taken.returncode] = "the server could not start"
    seen[_interrupted_query(long_stream[0])] = "interrupted"

    assert set(seen) == set(documented), (seen, documented)
    for code, meaning in seen.items():
        assert documented[code].startswith(meaning), (code, documented[code])


def _interrupted_query(stream: str) -> int:
    """Ctrl-C while the command waits for a server that accepted the connection but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        proc = subprocess.Popen([PINGTHINGS, "--endpoint", f"127.0.0.1:{port}", "query", stream],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_CLEAN)
        silent.settimeout(60)
        conn, _ = silent.accept()  # the command is now waiting for the server's answer
        with conn:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    assert err.decode().strip() == "Interrupted.", err
    assert out == b""
    return proc.returncode


def test_the_demo_writes_no_progress_fragments_when_not_on_a_terminal(tmp_path: Path) -> None:
    result = run("demo", "--data", str(tmp_path / "demo"), "--minutes", "0.1", "--plot",
                 str(tmp_path / "demo.png"), timeout=170)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert "inserting" not in result.stderr  # no bar at all: stderr is a pipe here
