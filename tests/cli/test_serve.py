"""``pingthings serve`` as a real process: prints its endpoint, answers, stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(120)

ENDPOINT_RE = re.compile(r"listening on (127\.0\.0\.1:\d+)")


def _read_endpoint(proc: subprocess.Popen[str], deadline_s: float = 60.0) -> str:
    """Read the server's stdout until it names its endpoint (or fail with what it printed)."""
    assert proc.stdout is not None
    seen: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = ENDPOINT_RE.search(line)
        if match:
            return match.group(1)
    proc.kill()
    raise AssertionError(f"serve printed no endpoint; output: {''.join(seen)!r}")


@contextmanager
def serving(data: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``pingthings serve --data DATA --listen 127.0.0.1:0`` and yield the process and endpoint."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pingthings.cli.main", "serve", "--data", str(data), "--listen", "127.0.0.1:0",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield proc, _read_endpoint(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def test_serve_answers_keeps_data_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    import pingthings.timeseries as pt

    data = tmp_path / "data"
    stream_id = uuid.uuid4()
    times = np.arange(1_000, dtype=np.int64) * 1_000_000 + 1_600_000_000_000_000_000
    values = np.sin(np.arange(1_000) / 10.0)
    with serving(data) as (proc, endpoint):
        with pt.connect(endpoint=endpoint) as conn:
            assert conn.info()["major_version"] == 5
            conn.create(stream_id, "serve_test", tags={"name": "s"}).insert((times, values))
        assert _stop(proc) == 0, proc.stderr.read() if proc.stderr else ""

    with serving(data) as (proc, endpoint), pt.connect(endpoint=endpoint) as conn:
        table = conn.stream_from_uuid(stream_id).raw_values(int(times[0]), int(times[-1]) + 1)
        np.testing.assert_array_equal(table.column("value").to_numpy(), values)
        assert _stop(proc) == 0


def test_serve_with_an_api_key(tmp_path: Path) -> None:
    import pingthings.timeseries as pt
    from pingthings.timeseries.exceptions import PermissionDeniedError

    with serving(tmp_path / "data", "--api-key", "k-123") as (proc, endpoint):
        with pt.connect(endpoint=endpoint, apikey="k-123") as conn:
            assert conn.list_collections() == []
        with pytest.raises(PermissionDeniedError), pt.connect(endpoint=endpoint, apikey="wrong") as conn:
            conn.list_collections()
        assert _stop(proc) == 0


def test_serve_with_tls_and_a_keys_file(tmp_path: Path) -> None:
    import trustme

    import pingthings.timeseries as pt

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    keys = tmp_path / "keys.yaml"
    keys.write_text("- first-key\n- key: second-key\n  admin: true\n")

    with serving(tmp_path / "data", "--keys-file", str(keys), "--tls-cert", str(cert),
                 "--tls-key", str(key)) as (proc, endpoint):
        for apikey in ("first-key", "second-key"):
            with pt.connect(endpoint=endpoint, apikey=apikey, tls=True, ca_bundle=str(ca_file)) as conn:
                assert conn.info()["major_version"] == 5
        assert _stop(proc) == 0
