"""Fixtures of the server tests that need a server in its own process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.processes import server_process as run_server_process


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A server in its own process (default limits) on a fresh directory, and its endpoint."""
    with run_server_process(tmp_path) as running:
        yield running
