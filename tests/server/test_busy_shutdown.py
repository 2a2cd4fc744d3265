"""SIGTERM stops a busy server within 10 s, even when a client holds a large read open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from pingthings._proto import v5api
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient

STOP_WITHIN = 10.0


def _ended(client: RawClient, request: v5api.SqlQueryParams) -> object:
    try:
        return client.stream("SQLQuery", request, timeout=120)
    except Exception as exc:  # the server went away: expected
        return exc


def _query_running(pid: int) -> bool:
    """Whether the server process has a thread burning CPU (the query), read from /proc."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "R" and task.name != str(pid):
            return True
    return False


def test_sigterm_stops_a_server_with_a_stalled_read_and_a_long_query(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pingthings.server", "--data", str(tmp_path), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "listening on" in line, line
        endpoint = line.strip().rsplit(" ", 1)[-1]
        with RawClient(endpoint) as client, RawClient(endpoint) as other:
            uu = create(client, "busy/stop")
            for i in range(8):
                times = np.arange(i * 100_000, (i + 1) * 100_000, dtype=np.int64)
                insert(client, uu, times, np.ones(len(times)))
            # A read far larger than the flow-control windows, of which the client takes one message.
            replies = client.channel.unary_stream("/v5api.BTrDB/RawValues")(
                bytes(v5api.RawValuesParams(uuid=uu, start=0, end=10**9)), timeout=120
            )
            next(replies)
            # And a query that would run until its own time budget, in another thread.
            endless = v5api.SqlQueryParams(
                query="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
            )
            outcome: list[object] = []
            query = threading.Thread(target=lambda: outcome.append(_ended(other, endless)))
            query.start()
            while process.poll() is None and not _query_running(process.pid):
                time.sleep(0.05)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            elapsed = time.monotonic() - started
            query.join(timeout=60)
        assert elapsed < STOP_WITHIN, f"the server took {elapsed:.1f} s to stop"
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)
