"""``pingthings compact``: on a stopped server's data directory, then seen by a client."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import pingthings.timeseries as pt
from pingthings.cli.main import cli
from pingthings.server import Server
from pingthings.timeseries.exceptions import VersionNotAvailable

T0 = 1_700_000_000 * 10**9


def test_compact_command_drops_versions_a_client_then_cannot_read(tmp_path: Path) -> None:
    sid = uuid.uuid4()
    with Server(tmp_path) as srv, pt.connect(endpoint=srv.endpoint) as client:
        stream = client.create(sid, "compact", {"name": "s"})
        old = []
        for i in range(20):
            stream.insert((np.array([T0 + i], dtype=np.int64), np.array([float(i)])))
            old.append(client_version(stream))
        cutoff = time.time_ns()
        stream.insert((np.array([T0 + 100], dtype=np.int64), np.array([100.0])))
        latest = client_version(stream)

    result = CliRunner().invoke(cli, ["compact", "--data", str(tmp_path), "--before", str(cutoff)])
    assert result.exit_code == 0, result.output
    assert "dropped 20 versions" in result.output  # the creation version and the first 19 inserts

    with Server(tmp_path) as srv, pt.connect(endpoint=srv.endpoint) as client:
        stream = client.stream_from_uuid(sid)
        assert stream.count(version=old[-1]) == 20  # current at the cut-off: kept
        assert stream.count(version=latest) == 21
        with pytest.raises(VersionNotAvailable, match="dropped by compaction"):
            stream.count(version=old[0])


def client_version(stream: pt.Stream) -> int:
    """The stream's latest version (asking for it merges the buffered inserts into it)."""
    return int(stream.get_latest_version())


def test_compact_refuses_a_directory_without_a_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["compact", "--data", str(tmp_path), "--before", "now"])
    assert result.exit_code == 2
    assert "holds no engine database" in result.output
