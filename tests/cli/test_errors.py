"""User errors end in one line on stderr and a documented exit code, never a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pingthings.cli.errors import (
    EXIT_CONNECTION,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_SERVER_START,
    EXIT_USAGE,
)
from pingthings.cli.main import cli

from .support import Populated

pytestmark = pytest.mark.timeout(120)


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_connection_refused_in_a_real_process() -> None:
    endpoint = f"127.0.0.1:{_closed_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "pingthings.cli.main", "--endpoint", endpoint, "ls"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == EXIT_CONNECTION, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and endpoint in lines[0], proc.stderr
    assert proc.stdout == ""


def test_unknown_stream_uuid(populated: Populated) -> None:
    missing = uuid.uuid4()
    _assert_one_line_error(populated.run("query", str(missing)), EXIT_NOT_FOUND, str(missing))


def test_unknown_stream_name(populated: Populated) -> None:
    name = f"{populated.collection}/NOPE"
    _assert_one_line_error(populated.run("query", name), EXIT_NOT_FOUND, "NOPE")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--start", "last tuesday"], "last tuesday"),
    (["--end", "2024-02-30"], "2024-02-30"),
    (["--window", "fast"], "fast"),
    (["--pw", "30", "--window", "1s"], "--pw"),
    (["--start", "2024-01-02", "--end", "2024-01-01"], "--start"),
])
def test_bad_query_arguments(populated: Populated, args: list[str], fragment: str) -> None:
    stream = next(iter(populated.streams.values()))
    _assert_one_line_error(populated.run("query", str(stream.uuid), *args), EXIT_USAGE, fragment)


def test_output_format_that_cannot_be_guessed(populated: Populated, tmp_path: Path) -> None:
    stream = next(iter(populated.streams.values()))
    out = tmp_path / "data.xlsx"
    _assert_one_line_error(populated.run("query", str(stream.uuid), "-o", str(out)), EXIT_USAGE, "xlsx")
    assert not out.exists()


def test_sql_that_is_not_a_select_is_refused(populated: Populated) -> None:
    result = populated.run("sql", "DELETE FROM streams")
    _assert_one_line_error(result, EXIT_FAILURE)
    statement = "SELECT name FROM streams WHERE collection = $1"
    rows = json.loads(populated.run("sql", statement, populated.collection, "--json").stdout)
    assert sorted(row["name"] for row in rows) == sorted(populated.streams)  # still there


def test_wrong_api_key(auth_server: object) -> None:
    endpoint = auth_server.endpoint  # type: ignore[attr-defined]
    result = _run("--endpoint", endpoint, "--apikey", "not-the-key", "ls")
    _assert_one_line_error(result, EXIT_CONNECTION)
    ok = _run("--endpoint", endpoint, "--apikey", auth_server.api_key, "ls")  # type: ignore[attr-defined]
    assert ok.exit_code == 0, ok.output


def test_serve_refuses_half_a_tls_configuration(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not used\n")
    result = _run("serve", "--data", str(tmp_path / "d"), "--tls-cert", str(cert))
    _assert_one_line_error(result, EXIT_USAGE, "--tls-key")


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    result = _run("serve", "--data", str(tmp_path / "d"), "--listen", "0.0.0.0:0")
    _assert_one_line_error(result, EXIT_USAGE, "0.0.0.0")


def test_serve_bad_listen_address(tmp_path: Path) -> None:
    result = _run("serve", "--data", str(tmp_path), "--listen", "nowhere")
    _assert_one_line_error(result, EXIT_USAGE, "nowhere")


_NO_SETTINGS = {"BTRDB_ENDPOINTS": None, "BTRDB_API_KEY": None, "BTRDB_PROFILE": None}


def test_a_profile_from_the_credentials_file_is_used(populated: Populated, tmp_path: Path) -> None:
    (tmp_path / ".predictivegrid").mkdir()
    (tmp_path / ".predictivegrid" / "credentials.yaml").write_text(
        f"local:\n  name: local\n  btrdb:\n    endpoints: \"{populated.endpoint}\"\n"
    )
    env = {**_NO_SETTINGS, "HOME": str(tmp_path)}
    args = ["--profile", "local", "ls", "-l", populated.collection, "--json"]
    result = CliRunner(env=env).invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sorted(s["name"] for s in json.loads(result.stdout)) == sorted(populated.streams)

    unknown = CliRunner(env=env).invoke(cli, ["--profile", "elsewhere", "ls"])
    _assert_one_line_error(unknown, EXIT_USAGE, "elsewhere")


def test_no_endpoint_at_all_means_the_local_default(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(("127.0.0.1", 4410)) == 0:
            pytest.skip("something listens on 127.0.0.1:4410 on this machine")
    result = CliRunner(env={**_NO_SETTINGS, "HOME": str(tmp_path)}).invoke(cli, ["info"])
    _assert_one_line_error(result, EXIT_CONNECTION, "127.0.0.1:4410", "refused")


def test_a_malformed_endpoint_is_a_usage_error() -> None:
    _assert_one_line_error(_run("--endpoint", "no-port-here", "info"), EXIT_USAGE, "no-port-here")


def test_serve_on_a_port_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("serve", "--data", str(data), "--listen", f"127.0.0.1:{port}")
    _assert_one_line_error(result, EXIT_SERVER_START, str(port), "in use")
    assert not data.exists()  # nothing is created before the port is bound
